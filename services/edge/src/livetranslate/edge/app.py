"""The edge as an ASGI app: the web page, sessions, sockets, health and metrics.

| route | what |
| --- | --- |
| ``GET /`` | the page (``web/index.html``); ``/static/*`` its scripts and styles |
| ``POST /api/sessions`` | a new session and its publish and view tokens |
| ``WS /ws/sessions/{id}?token=&after=`` | the session's events, stored then live |
| ``WS /ws/sessions/{id}/audio?token=`` | microphone audio into ``audio.ingest.<id>`` |
| ``GET /healthz``, ``/readyz``, ``/metrics`` | liveness, readiness, Prometheus |

``services/edge/PROTOCOL.md`` documents the sockets' messages and close codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from livetranslate.edge.api import Sessions
from livetranslate.edge.broker import BrokerLink
from livetranslate.edge.context import EdgeContext
from livetranslate.edge.metrics import CONTENT_TYPE
from livetranslate.edge.settings import EdgeSettings
from livetranslate.edge.sockets import Microphones, Viewers
from livetranslate.streams.settings import load

__all__ = ["DEFAULT_WEB_DIR", "create_app"]

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[5] / "web"
"""The repository's ``web/`` folder, seen from this package in a workspace checkout."""

NO_CACHE = {"Cache-Control": "no-cache"}


def create_app(
    nats_url: str, web_dir: Path | None = None, *, settings: EdgeSettings | None = None
) -> Starlette:
    """The edge app; it connects to ``nats_url`` while it runs.

    ``settings`` defaults to the ``LIVETRANSLATE_EDGE_*`` environment; a
    wrong value there stops the process, naming the variable.
    """
    edge = EdgeContext(
        broker=BrokerLink(nats_url),
        settings=settings or load(EdgeSettings),
        web_dir=_checked_web_dir(web_dir or DEFAULT_WEB_DIR),
    )
    pages = _Pages(edge)
    routes: list[BaseRoute] = [
        Route("/", pages.index),
        Route("/healthz", pages.healthz),
        Route("/readyz", pages.readyz),
        Route("/metrics", pages.metrics),
        Route("/api/sessions", Sessions(edge).create, methods=["POST"]),
        WebSocketRoute("/ws/sessions/{session_id}", Viewers(edge).socket),
        WebSocketRoute("/ws/sessions/{session_id}/audio", Microphones(edge).socket),
        Mount("/static", StaticFiles(directory=edge.web_dir), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=pages.lifespan)
    app.state.edge = edge
    return app


def _checked_web_dir(web_dir: Path) -> Path:
    # Fail at start-up, naming the folder, rather than 404 on the first visit.
    if not (web_dir / "index.html").is_file():
        raise FileNotFoundError(
            f"the edge's web page is missing: expected {web_dir / 'index.html'}; "
            "pass web_dir= the repository's web/ folder"
        )
    return web_dir


class _Pages:
    """The plain HTTP endpoints, and the app's lifespan."""

    def __init__(self, edge: EdgeContext) -> None:
        self.edge = edge

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.edge.broker.start()
        try:
            yield
        finally:
            await self.edge.close()

    async def index(self, request: Request) -> FileResponse:
        return FileResponse(self.edge.web_dir / "index.html", headers=NO_CACHE)

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> JSONResponse:
        reason = await self.edge.broker.unready_reason()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.edge.metrics.render(), media_type=CONTENT_TYPE)
