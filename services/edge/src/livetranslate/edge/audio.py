"""A browser's microphone into ``audio.ingest.<session>``, one chunk per WebSocket frame.

Each binary frame is PCM s16le, 16 kHz, mono, at most ``MAX_FRAME_MS``
long; it is published as one ``AudioChunkMeta`` chunk with a
``Nats-Msg-Id`` of ``<session>:chunk:<seq>``, as ``livetranslate publish``
does. The numbering continues from what the AUDIO stream already holds for
the session, so a socket that reconnects, to this edge or another, carries
on the session instead of restarting it.

A session's audio ends (the ``SessionEvent`` end marker, after which the
stages flush it) when its browser closes the socket normally, or when no
socket has come back for it within a grace period. Ended is final: a
session takes no audio after its end marker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from starlette import status

from livetranslate.contracts import ContractError, decode, encode, encode_audio, subjects, v1
from livetranslate.streams.topology import AUDIO

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_FRAME_MS",
    "AudioIngest",
    "AudioPosition",
    "FrameError",
    "PublisherSlots",
    "SessionEndedError",
    "check_frame",
]

log = structlog.get_logger(__name__)

BYTES_PER_SAMPLE = 2
MAX_FRAME_MS = 100
MAX_FRAME_BYTES = v1.SAMPLE_RATE_HZ * BYTES_PER_SAMPLE * MAX_FRAME_MS // 1000
"""3,200 bytes: 100 ms of 16 kHz s16 mono."""


class FrameError(ValueError):
    """A frame that is not PCM s16le audio the edge accepts; ``code`` is the close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class SessionEndedError(Exception):
    """The session's audio has ended; it takes no more."""


def check_frame(message_bytes: bytes | None) -> bytes:
    """The frame's PCM, or FrameError saying what was expected and what came."""
    if message_bytes is None:
        raise FrameError(
            status.WS_1003_UNSUPPORTED_DATA,
            "text frame refused: send binary PCM s16le 16 kHz mono",
        )
    size = len(message_bytes)
    if size > MAX_FRAME_BYTES:
        raise FrameError(
            status.WS_1009_MESSAGE_TOO_BIG,
            f"frame of {size} bytes refused: at most {MAX_FRAME_BYTES} ({MAX_FRAME_MS} ms)",
        )
    if size == 0 or size % BYTES_PER_SAMPLE:
        raise FrameError(
            status.WS_1007_INVALID_FRAME_PAYLOAD_DATA,
            f"frame of {size} bytes refused: s16le needs a positive, even byte count",
        )
    return message_bytes


@dataclass(frozen=True)
class AudioPosition:
    """Where a session's audio stands in the AUDIO stream."""

    next_seq: int = 0
    offset_samples: int = 0
    started: bool = False

    @classmethod
    async def of(cls, js: JetStreamContext, session_id: str) -> AudioPosition:
        """Read from the session's last stored message; SessionEndedError after its end."""
        try:
            last = await js.get_last_msg(AUDIO.name, subjects.audio_ingest(session_id))
        except NotFoundError:
            return cls()
        try:
            decoded = decode(last.headers, last.data or b"")
        except ContractError as exc:
            # Not the edge's own; the next chunk still gets a fresh number.
            log.warning("edge.audio_tail_unreadable", session_id=session_id, reason=str(exc))
            return cls(started=True)
        return cls.following(decoded.contract, len(decoded.pcm), session_id)

    @classmethod
    def following(cls, contract: v1.Contract, pcm_bytes: int, session_id: str) -> AudioPosition:
        """Where audio goes on after ``contract``, the last stored message of the session."""
        if isinstance(contract, v1.SessionEvent) and contract.kind == "end":
            raise SessionEndedError(f"session {session_id} has ended; start a new one")
        if isinstance(contract, v1.AudioChunkMeta):
            samples = pcm_bytes // BYTES_PER_SAMPLE
            return cls(contract.seq + 1, contract.offset_samples + samples, started=True)
        return cls(started=True)


class AudioIngest:
    """Publishes one session's chunks in order, each acknowledged before the next."""

    def __init__(self, js: JetStreamContext, session_id: str, position: AudioPosition) -> None:
        self.session_id = session_id
        self.position = position
        self._js = js
        self._subject = subjects.audio_ingest(session_id)

    @classmethod
    async def resume(cls, js: JetStreamContext, session_id: str) -> AudioIngest:
        """Pick the session up where its stored audio stops; SessionEndedError after its end."""
        return cls(js, session_id, await AudioPosition.of(js, session_id))

    async def start(self) -> None:
        """Publish the start marker, unless the session has begun already."""
        if self.position.started:
            return
        start = v1.SessionEvent(session_id=self.session_id, kind="start")
        await self._publish_event(start, "start")
        self.position = AudioPosition(started=True)

    async def publish(self, pcm: bytes) -> None:
        at = self.position
        meta = v1.AudioChunkMeta(
            session_id=self.session_id, seq=at.next_seq, offset_samples=at.offset_samples
        )
        body, headers = encode_audio(meta, pcm, f"{self.session_id}:chunk:{at.next_seq}")
        await self._js.publish(self._subject, body, headers=headers, stream=AUDIO.name)
        self.position = AudioPosition(
            at.next_seq + 1, at.offset_samples + len(pcm) // BYTES_PER_SAMPLE, started=True
        )

    async def end(self) -> None:
        end = v1.SessionEvent(
            session_id=self.session_id, kind="end", total_samples=self.position.offset_samples
        )
        await self._publish_event(end, "end")
        log.info("edge.audio_ended", session_id=self.session_id, samples=end.total_samples)

    async def end_unless_continued(self) -> None:
        """End the session, unless someone has published to it since this ingest did."""
        try:
            now = await AudioPosition.of(self._js, self.session_id)
        except SessionEndedError:
            return
        if now != self.position:
            log.info("edge.audio_continued_elsewhere", session_id=self.session_id)
            return
        await self.end()

    async def _publish_event(self, event: v1.SessionEvent, kind: str) -> None:
        body, headers = encode(event, f"{self.session_id}:{kind}")
        await self._js.publish(self._subject, body, headers=headers, stream=AUDIO.name)


class PublisherSlots:
    """At most one microphone socket per session on this edge, and the grace timers.

    A newer socket for a session takes over from an older one, which is
    likely a connection the browser has already given up on. The takeover
    is serialised, so two sockets arriving together cannot both publish.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._active: dict[str, asyncio.Task[int]] = {}
        self._ending: dict[str, asyncio.Task[None]] = {}
        self._takeover = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def takeover(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session while the new socket finds its position; stops an older socket."""
        async with self._takeover:
            ending = self._ending.pop(session_id, None)
            if ending is not None:
                await _cancelled(ending)
            older = self._active.pop(session_id, None)
            if older is not None:
                await _cancelled(older)
            yield

    def hold(self, session_id: str, receiving: asyncio.Task[int]) -> None:
        """Mark ``receiving`` as the session's current socket (inside ``takeover``)."""
        self._active[session_id] = receiving

    def release(self, session_id: str, receiving: asyncio.Task[int]) -> None:
        if self._active.get(session_id) is receiving:
            del self._active[session_id]

    def end_later(self, ingest: AudioIngest) -> None:
        """End the session after the grace period, unless a socket comes back first."""
        session_id = ingest.session_id
        self._ending[session_id] = asyncio.create_task(
            self._end_after_grace(ingest), name=f"edge-audio-end-{session_id}"
        )

    async def close(self) -> None:
        """Stop the timers without ending their sessions: a restarting edge ends nothing."""
        timers, self._ending = list(self._ending.values()), {}
        for timer in timers:
            await _cancelled(timer)

    async def _end_after_grace(self, ingest: AudioIngest) -> None:
        await asyncio.sleep(self.grace_s)
        try:
            await ingest.end_unless_continued()
        except Exception as exc:
            log.warning("edge.audio_end_failed", session_id=ingest.session_id, error=repr(exc))
        finally:
            if self._ending.get(ingest.session_id) is asyncio.current_task():
                del self._ending[ingest.session_id]


async def _cancelled(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
