"""Running the edge app under uvicorn inside an event loop someone else owns."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from livetranslate.streams.server import free_port

__all__ = ["EdgeStartError", "serve", "serving"]

GRACEFUL_SHUTDOWN_S = 5
"""Open sockets are closed (1012) at shutdown; this bounds the wait for their handlers."""

MAX_WS_MESSAGE_BYTES = 64 * 1024
"""Browsers send the edge only audio frames (3,200 bytes at most); anything far larger
is cut off by uvicorn (close 1009) before it is buffered."""

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02


class EdgeStartError(RuntimeError):
    """uvicorn could not start the edge: the port is taken or the app failed to start."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that runs it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would replace the process's SIGINT/SIGTERM handlers while it
        # serves; here the caller decides when to stop, through ``stop``.
        yield


async def serve(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, *, stop: asyncio.Event
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set, then shut down gracefully."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ws_max_size=MAX_WS_MESSAGE_BYTES,
        # Compressing each caption for each viewer cost more CPU than any other
        # step of the fan-out (measured with 200 viewers); captions are small.
        ws_per_message_deflate=False,
    )
    server = _Server(config)
    _freeze_startup_objects()
    watcher = asyncio.create_task(_exit_when_set(server, stop))
    try:
        await server.serve()
    except SystemExit as exc:
        # uvicorn exits the process when it cannot bind or start up; it has
        # already logged why.
        raise EdgeStartError(f"edge could not start on http://{host}:{port}") from exc
    finally:
        watcher.cancel()


def _freeze_startup_objects() -> None:
    # With 200 viewers, full collections over everything imported at start-up
    # (pydantic schemas, models, modules) paused the event loop for 25-60 ms
    # each, every viewer's captions with it. What exists now lives as long as
    # the process: collect the garbage once, then exempt the rest from scans.
    gc.collect()
    gc.freeze()


async def _exit_when_set(server: uvicorn.Server, stop: asyncio.Event) -> None:
    await stop.wait()
    server.should_exit = True


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on a free port while the block runs; yields ``host:port``.

    For tests and the load script: the block starts once the port accepts
    connections, and the server has shut down when it ends.
    """
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, host, port, stop=stop))
    try:
        await _until_listening(host, port, server)
        yield f"{host}:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(server, STOP_TIMEOUT_S)


async def _until_listening(host: str, port: int, server: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if server.done():
            server.result()  # raises EdgeStartError
            raise EdgeStartError(f"edge stopped before serving on http://{host}:{port}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(POLL_S)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise EdgeStartError(f"edge did not listen on http://{host}:{port} within {START_TIMEOUT_S} s")
