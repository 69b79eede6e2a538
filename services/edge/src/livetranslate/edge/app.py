"""The edge as an ASGI app: the web page, health checks and one socket per viewer.

``WS /ws/sessions/{session_id}?after=<seq>`` sends each stored and live
result of the session as one JSON text frame::

    {"contract": "transcript", "version": 1, "subject": "transcript.final.s1",
     "seq": 42, "data": {...the contract...}}

``seq`` is the RESULTS stream sequence; a browser that reconnects with
``?after=<last seq it got>`` misses nothing and gets nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from livetranslate.contracts.subjects import InvalidSubjectError, validate_session_id
from livetranslate.edge.backlog import Backlog
from livetranslate.edge.broker import BrokerLink
from livetranslate.edge.feed import SessionFeed
from starlette import status
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

__all__ = ["DEFAULT_WEB_DIR", "create_app"]

log = structlog.get_logger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[5] / "web"
"""The repository's ``web/`` folder, seen from this package in a workspace checkout."""

BROKER_WAIT_S = 5.0
"""How long a socket that arrives before the broker connection waits for it."""

AFTER_PATTERN = re.compile(r"[0-9]{1,19}")
MAX_CLOSE_REASON_BYTES = 123
"""RFC 6455 leaves 123 bytes of a close frame for the reason."""


class _BadRequestError(ValueError):
    """A socket asked for something the edge refuses; the text goes in the close frame."""


def create_app(
    nats_url: str, web_dir: Path | None = None, *, backlog_frames: int = 1000
) -> Starlette:
    """The edge app; it connects to ``nats_url`` while it runs.

    ``backlog_frames`` bounds what waits for one slow browser before its
    partials are dropped.
    """
    web = _checked_web_dir(web_dir or DEFAULT_WEB_DIR)
    edge = _Edge(BrokerLink(nats_url), web, backlog_frames)
    routes: list[BaseRoute] = [
        Route("/", edge.index),
        Route("/healthz", edge.healthz),
        Route("/readyz", edge.readyz),
        WebSocketRoute("/ws/sessions/{session_id}", edge.session_socket),
        Mount("/static", StaticFiles(directory=web), name="static"),
    ]
    return Starlette(routes=routes, lifespan=edge.lifespan)


def _checked_web_dir(web_dir: Path) -> Path:
    # Fail at start-up, naming the folder, rather than 404 on the first visit.
    if not (web_dir / "index.html").is_file():
        raise FileNotFoundError(
            f"the edge's web page is missing: expected {web_dir / 'index.html'}; "
            "pass web_dir= the repository's web/ folder"
        )
    return web_dir


class _Edge:
    """The endpoints, sharing one broker connection."""

    def __init__(self, broker: BrokerLink, web_dir: Path, backlog_frames: int) -> None:
        self.broker = broker
        self.web_dir = web_dir
        self.backlog_frames = backlog_frames

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.broker.start()
        try:
            yield
        finally:
            await self.broker.close()

    async def index(self, request: Request) -> FileResponse:
        return FileResponse(self.web_dir / "index.html", headers={"Cache-Control": "no-cache"})

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> JSONResponse:
        reason = await self.broker.unready_reason()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    async def session_socket(self, websocket: WebSocket) -> None:
        # Accept before refusing: a close frame carries its reason to the
        # browser, a refused handshake only says 403.
        await websocket.accept()
        try:
            session_id, after = _requested_feed(websocket)
        except _BadRequestError as exc:
            await _close(websocket, status.WS_1008_POLICY_VIOLATION, str(exc))
            return
        feed = await self._open_feed(websocket, session_id, after)
        if feed is None:
            return
        bound = log.bind(session_id=session_id, after=after)
        bound.info("edge.socket_opened")
        try:
            await _pump_until_closed(websocket, feed.backlog)
        finally:
            await feed.stop()
        bound.info("edge.socket_closed", last_seq=feed.last_seq, dropped=feed.backlog.dropped)

    async def _open_feed(
        self, websocket: WebSocket, session_id: str, after: int
    ) -> SessionFeed | None:
        client = await self.broker.wait(BROKER_WAIT_S)
        if client is None:
            await _close(websocket, status.WS_1013_TRY_AGAIN_LATER, "broker unavailable; retry")
            return None
        feed = SessionFeed(client.jetstream(), session_id, after, Backlog(self.backlog_frames))
        try:
            await feed.start()
        except Exception as exc:
            log.warning("edge.feed_failed", session_id=session_id, error=repr(exc))
            await _close(websocket, status.WS_1011_INTERNAL_ERROR, "could not follow session")
            return None
        return feed


def _requested_feed(websocket: WebSocket) -> tuple[str, int]:
    """The session id and the ``after`` sequence the socket asks for."""
    try:
        session_id = validate_session_id(websocket.path_params["session_id"])
    except InvalidSubjectError as exc:
        raise _BadRequestError(str(exc)) from exc
    after = websocket.query_params.get("after", "0")
    if not AFTER_PATTERN.fullmatch(after):
        raise _BadRequestError(f"after must be a stream sequence (0 or more); got {after!r}")
    return session_id, int(after)


async def _pump_until_closed(websocket: WebSocket, backlog: Backlog) -> None:
    """Send frames until the browser leaves or a send fails."""
    tasks = {
        asyncio.create_task(_send_frames(websocket, backlog)),
        asyncio.create_task(_wait_for_disconnect(websocket)),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when this handler is cancelled: neither task may outlive the socket.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.debug("edge.socket_ended", error=repr(task.exception()))


async def _send_frames(websocket: WebSocket, backlog: Backlog) -> None:
    while True:
        frame = await backlog.get()
        await websocket.send_text(frame.text)


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    # Browsers send nothing we act on; reading is how a close is noticed.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    clipped = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
    await websocket.close(code=code, reason=clipped)
