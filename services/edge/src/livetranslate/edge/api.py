"""``POST /api/sessions``: a new session, its config, and the two tokens that guard it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette import status
from starlette.requests import Request
from starlette.responses import JSONResponse

from livetranslate.contracts import v1
from livetranslate.contracts.subjects import validate_language
from livetranslate.edge.access import issue, new_session_id
from livetranslate.edge.context import EdgeContext
from livetranslate.streams.sessions import SessionStore

__all__ = ["MAX_BODY_BYTES", "NewSession", "Sessions"]

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 4096
MAX_TARGET_LANGUAGES = 8

Language = Annotated[str, AfterValidator(validate_language)]


class NewSession(BaseModel):
    """What a browser asks of a new session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_language: Language | None = Field(
        default=None, description="Spoken language; null lets the recogniser detect it."
    )
    target_languages: tuple[Language, ...] = Field(
        default=(), max_length=MAX_TARGET_LANGUAGES, description="Languages to translate into."
    )


class Sessions:
    """Creates sessions: the access record first, so no moment exists when one is open."""

    def __init__(self, edge: EdgeContext) -> None:
        self.edge = edge

    async def create(self, request: Request) -> JSONResponse:
        try:
            wanted = await _new_session(request)
        except ValueError as exc:
            return _error(status.HTTP_400_BAD_REQUEST, str(exc))
        client = await self.edge.client()
        if client is None:
            return _error(status.HTTP_503_SERVICE_UNAVAILABLE, "broker unavailable; retry")

        record, tokens = issue(new_session_id())
        await self.edge.access(client).create(record)
        store = SessionStore(client)
        await store.open()
        await store.put(
            v1.SessionConfig(
                session_id=tokens.session_id,
                source_language=wanted.source_language,
                target_languages=wanted.target_languages,
            )
        )
        self.edge.metrics.sessions_created.inc()
        log.info("edge.session_created", session_id=tokens.session_id)

        view_url = _view_url(request, tokens.session_id, tokens.view_token)
        body = {
            "session_id": tokens.session_id,
            "publish_token": tokens.publish_token,
            "view_token": tokens.view_token,
            "view_url": view_url,
        }
        return JSONResponse(body, status_code=status.HTTP_201_CREATED)


async def _new_session(request: Request) -> NewSession:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"request body of {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        return NewSession.model_validate_json(body or b"{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise ValueError(
            f"expected JSON {{source_language?: 'en', target_languages: ['pt', ...]}}; {problems}"
        ) from exc


def _view_url(request: Request, session_id: str, view_token: str) -> str:
    # The token rides in the fragment: browsers never send it to a server,
    # so it stays out of access logs and Referer headers.
    query = urlencode({"session": session_id})
    return f"{request.base_url}?{query}#token={quote(view_token)}"


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=code)
