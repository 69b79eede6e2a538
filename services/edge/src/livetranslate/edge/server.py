"""Running the edge app under uvicorn inside an event loop someone else owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["EdgeStartError", "serve"]

GRACEFUL_SHUTDOWN_S = 5
"""Open sockets are closed (1012) at shutdown; this bounds the wait for their handlers."""


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
    )
    server = _Server(config)
    watcher = asyncio.create_task(_exit_when_set(server, stop))
    try:
        await server.serve()
    except SystemExit as exc:
        # uvicorn exits the process when it cannot bind or start up; it has
        # already logged why.
        raise EdgeStartError(f"edge could not start on http://{host}:{port}") from exc
    finally:
        watcher.cancel()


async def _exit_when_set(server: uvicorn.Server, stop: asyncio.Event) -> None:
    await stop.wait()
    server.should_exit = True
