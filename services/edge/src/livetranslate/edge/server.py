"""Running the edge app under uvicorn inside an event loop someone else owns."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from livetranslate.streams.server import free_port

__all__ = ["EdgeStartError", "check_port_free", "serve", "serving"]

GRACEFUL_SHUTDOWN_S = 5
"""Open sockets are closed (1012) at shutdown; this bounds the wait for their handlers."""

MAX_WS_MESSAGE_BYTES = 64 * 1024
"""Browsers send the edge only audio frames (3,200 bytes at most); anything far larger
is cut off by uvicorn (close 1009) before it is buffered."""

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0


class EdgeStartError(RuntimeError):
    """uvicorn could not start the edge: the port is taken or the app failed to start."""


def check_port_free(host: str, port: int) -> None:
    """Raise ``EdgeStartError`` when ``host:port`` cannot be bound now.

    For callers with slow work to do before they serve (a broker, models): they
    fail before it rather than after. The port may still be taken in between.
    """
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        raise EdgeStartError(
            f"edge could not start on http://{host}:{port}: {exc.strerror or exc}"
        ) from exc


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that runs it,
    and says when it listens."""

    def __init__(self, config: uvicorn.Config, listening: asyncio.Event | None) -> None:
        super().__init__(config)
        self._listening = listening

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would replace the process's SIGINT/SIGTERM handlers while it
        # serves; here the caller decides when to stop, through ``stop``.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # uvicorn sets ``started`` once its own sockets are bound. Asking the
        # port instead would be fooled by another process that holds it.
        if self.started and self._listening is not None:
            self._listening.set()


async def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    stop: asyncio.Event,
    listening: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set, then shut down gracefully.

    ``listening`` is set once the edge accepts connections.
    """
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
    server = _Server(config, listening)
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
async def serving(
    app: ASGIApp, host: str = "127.0.0.1", port: int | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on ``port`` (None: a free one) while the block runs; yields ``host:port``.

    The block starts once the port accepts connections, so that whatever it
    announces is true, and the server has shut down when it ends.
    """
    port = free_port() if port is None else port
    stop = asyncio.Event()
    listening = asyncio.Event()
    server = asyncio.create_task(serve(app, host, port, stop=stop, listening=listening))
    try:
        await _until_listening(host, port, server, listening)
        yield f"{host}:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(server, STOP_TIMEOUT_S)


async def _until_listening(
    host: str, port: int, server: asyncio.Task[None], listening: asyncio.Event
) -> None:
    """Return once ``listening`` is set; raise why if the server ends first or is late."""
    waiting = asyncio.create_task(listening.wait())
    try:
        await asyncio.wait(
            {server, waiting}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiting.cancel()
    if listening.is_set():
        return
    if server.done():
        server.result()  # raises EdgeStartError
        raise EdgeStartError(f"edge stopped before serving on http://{host}:{port}")
    raise EdgeStartError(f"edge did not listen on http://{host}:{port} within {START_TIMEOUT_S} s")
