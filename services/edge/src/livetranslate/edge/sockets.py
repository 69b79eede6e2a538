"""The edge's two WebSockets: a viewer's feed of events, a microphone's audio.

``services/edge/PROTOCOL.md`` describes both as a browser sees them. Both
accept first and refuse afterwards: a close frame carries its code and
reason to the browser, where a refused handshake only says 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from enum import Enum

import structlog
from nats.aio.client import Client
from starlette import status
from starlette.websockets import WebSocket, WebSocketDisconnect

from livetranslate.contracts.subjects import InvalidSubjectError, validate_session_id
from livetranslate.edge.access import AccessDeniedError, Role, check
from livetranslate.edge.audio import AudioIngest, FrameError, SessionEndedError, check_frame
from livetranslate.edge.backlog import Backlog, Frame
from livetranslate.edge.context import EdgeContext
from livetranslate.edge.feed import SessionFeed
from livetranslate.edge.metrics import EdgeMetrics

__all__ = ["MAX_CLOSE_REASON_BYTES", "Microphones", "Viewers"]

log = structlog.get_logger(__name__)

AFTER_PATTERN = re.compile(r"[0-9]{1,19}")
MAX_CLOSE_REASON_BYTES = 123
"""RFC 6455 leaves 123 bytes of a close frame for the reason."""


class _RefusedError(Exception):
    """A socket the edge will not serve; code and reason go into the close frame."""

    def __init__(self, code: int, reason: str, label: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.label = label
        """The ``reason`` label of the refusal counter: a few fixed words."""


class Viewers:
    """``WS /ws/sessions/{id}?token=&after=``: stored then live events of one session."""

    def __init__(self, edge: EdgeContext) -> None:
        self.edge = edge

    async def socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            feed = await self._open_feed(websocket)
        except _RefusedError as refused:
            await _refuse(websocket, self.edge.metrics, "view", refused)
            return
        bound = log.bind(session_id=feed.session_id, after=feed.after)
        bound.info("edge.viewer_opened")
        self.edge.metrics.viewers.inc()
        try:
            await _pump_until_closed(websocket, feed.backlog, self.edge.metrics)
        finally:
            self.edge.metrics.viewers.dec()
            await feed.stop()
        bound.info("edge.viewer_closed", last_seq=feed.last_seq, dropped=feed.backlog.dropped)

    async def _open_feed(self, websocket: WebSocket) -> SessionFeed:
        session_id = _session_id(websocket)
        after = _after(websocket)
        client = await _admit(self.edge, websocket, session_id, Role.VIEW)
        on_drop = self.edge.metrics.partials_dropped.inc
        backlog = Backlog(self.edge.settings.backlog_frames, on_drop=on_drop)
        feed = SessionFeed(client.jetstream(), self.edge.hubs(client), session_id, after, backlog)
        try:
            await feed.start()
        except Exception as exc:
            log.warning("edge.feed_failed", session_id=session_id, error=repr(exc))
            with contextlib.suppress(Exception):
                await feed.stop()
            raise _RefusedError(
                status.WS_1011_INTERNAL_ERROR, "could not follow session", "feed_failed"
            ) from exc
        return feed


class Microphones:
    """``WS /ws/sessions/{id}/audio?token=``: binary PCM frames into ``audio.ingest.<id>``."""

    def __init__(self, edge: EdgeContext) -> None:
        self.edge = edge

    async def socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            ingest, receiving = await self._take_session(websocket)
        except _RefusedError as refused:
            await _refuse(websocket, self.edge.metrics, "audio", refused)
            return
        bound = log.bind(session_id=ingest.session_id, seq=ingest.position.next_seq)
        bound.info("edge.microphone_opened")
        self.edge.metrics.publishers.inc()
        try:
            after = await self._receive(websocket, ingest, receiving)
        finally:
            self.edge.metrics.publishers.dec()
            self.edge.publishers.release(ingest.session_id, receiving)
        bound.info("edge.microphone_closed", then=after.name, chunks=ingest.position.next_seq)
        if after is _Then.END:
            await self._end(ingest)
        elif after is _Then.END_AFTER_GRACE:
            self.edge.publishers.end_later(ingest)

    async def _end(self, ingest: AudioIngest) -> None:
        try:
            await ingest.end()
        except Exception as exc:
            # The broker may be back by the end of the grace period; try once more then.
            log.warning("edge.audio_end_failed", session_id=ingest.session_id, error=repr(exc))
            self.edge.publishers.end_later(ingest)

    async def _take_session(self, websocket: WebSocket) -> tuple[AudioIngest, asyncio.Task[int]]:
        session_id = _session_id(websocket)
        client = await _admit(self.edge, websocket, session_id, Role.PUBLISH)
        async with self.edge.publishers.takeover(session_id):
            ingest = await _resumed(client, session_id)
            receiving = asyncio.create_task(
                _receive_audio(websocket, ingest, self.edge.metrics),
                name=f"edge-microphone-{session_id}",
            )
            self.edge.publishers.hold(session_id, receiving)
        return ingest, receiving

    async def _receive(
        self, websocket: WebSocket, ingest: AudioIngest, receiving: asyncio.Task[int]
    ) -> _Then:
        """Wait for the socket to end; what then happens to the session's audio."""
        try:
            code = await receiving
        except FrameError as exc:
            await _close(websocket, exc.code, exc.reason)
        except asyncio.CancelledError:
            if _cancelled_from_outside():
                # The edge is shutting down: stop receiving, end nothing.
                receiving.cancel()
                raise
            await _close(websocket, status.WS_1008_POLICY_VIOLATION, "replaced by a newer socket")
            return _Then.NOTHING
        except Exception as exc:
            log.warning("edge.audio_publish_failed", session_id=ingest.session_id, error=repr(exc))
            await _close(websocket, status.WS_1013_TRY_AGAIN_LATER, "could not publish; retry")
        else:
            if code == status.WS_1000_NORMAL_CLOSURE:
                return _Then.END
        return _Then.END_AFTER_GRACE


class _Then(Enum):
    """What becomes of a session's audio when its microphone socket ends."""

    END = "the browser closed normally: the audio ends now"
    END_AFTER_GRACE = "the socket dropped: the audio ends unless one comes back in time"
    NOTHING = "a newer socket took over: the session goes on there"


async def _resumed(client: Client, session_id: str) -> AudioIngest:
    try:
        ingest = await AudioIngest.resume(client.jetstream(), session_id)
        await ingest.start()
    except SessionEndedError as exc:
        raise _RefusedError(status.WS_1008_POLICY_VIOLATION, str(exc), "session_ended") from exc
    except Exception as exc:
        log.warning("edge.audio_resume_failed", session_id=session_id, error=repr(exc))
        raise _RefusedError(
            status.WS_1013_TRY_AGAIN_LATER, "could not read the session's audio; retry", "broker"
        ) from exc
    return ingest


async def _receive_audio(websocket: WebSocket, ingest: AudioIngest, metrics: EdgeMetrics) -> int:
    """Publish frames until the browser closes; returns its close code."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            code: int = message.get("code", status.WS_1005_NO_STATUS_RCVD)
            return code
        await ingest.publish(check_frame(message.get("bytes")))
        metrics.audio_frames.inc()


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _session_id(websocket: WebSocket) -> str:
    try:
        return validate_session_id(websocket.path_params["session_id"])
    except InvalidSubjectError as exc:
        raise _RefusedError(status.WS_1008_POLICY_VIOLATION, str(exc), "bad_request") from exc


def _after(websocket: WebSocket) -> int:
    after = websocket.query_params.get("after", "0")
    if not AFTER_PATTERN.fullmatch(after):
        raise _RefusedError(
            status.WS_1008_POLICY_VIOLATION,
            f"after must be a stream sequence (0 or more); got {after!r}",
            "bad_request",
        )
    return int(after)


async def _admit(edge: EdgeContext, websocket: WebSocket, session_id: str, role: Role) -> Client:
    """The broker client, once the socket's token allows ``role`` on the session."""
    client = await edge.client()
    if client is None:
        raise _RefusedError(status.WS_1013_TRY_AGAIN_LATER, "broker unavailable; retry", "broker")
    try:
        record = await edge.access(client).get(session_id)
    except Exception as exc:
        log.warning("edge.access_unreadable", session_id=session_id, error=repr(exc))
        raise _RefusedError(
            status.WS_1011_INTERNAL_ERROR, "could not check access", "access_unreadable"
        ) from exc
    token = websocket.query_params.get("token")
    open_session = edge.opens_sessions_to(websocket.scope)
    try:
        check(session_id, record, token, role, open_session=open_session)
    except AccessDeniedError as exc:
        label = "token_missing" if exc.missing else "token_wrong"
        raise _RefusedError(status.WS_1008_POLICY_VIOLATION, exc.reason, label) from exc
    return client


async def _pump_until_closed(websocket: WebSocket, backlog: Backlog, metrics: EdgeMetrics) -> None:
    """Send frames until the browser leaves or a send fails."""
    tasks = {
        asyncio.create_task(_send_frames(websocket, backlog, metrics)),
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


async def _send_frames(websocket: WebSocket, backlog: Backlog, metrics: EdgeMetrics) -> None:
    while True:
        frame = await backlog.get()
        await websocket.send_text(frame.text)
        _count_sent(metrics, frame)


def _count_sent(metrics: EdgeMetrics, frame: Frame) -> None:
    latency_s = None
    if frame.live and frame.published_at_s is not None:
        latency_s = max(time.time() - frame.published_at_s, 0.0)
    metrics.count_sent(frame.contract, latency_s)


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    # Viewers send nothing the edge acts on; reading is how a close is noticed.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _refuse(
    websocket: WebSocket, metrics: EdgeMetrics, endpoint: str, refused: _RefusedError
) -> None:
    metrics.refused.labels(endpoint, refused.label).inc()
    log.info("edge.socket_refused", endpoint=endpoint, reason=refused.reason)
    await _close(websocket, refused.code, refused.reason)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    clipped = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
    # The browser may be gone already; there is no one left to tell.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.close(code=code, reason=clipped)
