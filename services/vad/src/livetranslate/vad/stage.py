"""The VAD stage: audio chunks in, utterances of speech and speech events out.

Silence never leaves this stage. Each session has its own segmenter; chunks
are put back in order by their sequence number (concurrent publishers may
interleave them) and a redelivered chunk is recognised and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import structlog
from faststream.nats import NatsRouter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Publisher, Rejected, consume
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings
from livetranslate.vad.segmenter import (
    Segmenter,
    SileroVad,
    SpeechEnd,
    SpeechPiece,
    SpeechStart,
    VadOptions,
)

__all__ = ["VadSettings", "VadStage"]

log = structlog.get_logger(__name__)


class VadSettings(BrokerSettings):
    """``LIVETRANSLATE_VAD_*``: how speech is cut into utterances."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}VAD_", extra="ignore", frozen=True)

    threshold: float = Field(default=0.5, gt=0, lt=1, description="Speech probability to open.")
    min_silence_ms: int = Field(default=500, ge=100, description="Silence that closes.")
    max_utterance_s: float = Field(default=15.0, ge=2, le=30, description="Longer is cut.")
    reorder_window: int = Field(
        default=256, ge=1, description="Chunks held while waiting for a missing one."
    )

    def options(self) -> VadOptions:
        return VadOptions(
            threshold=self.threshold,
            neg_threshold=max(self.threshold - 0.15, 0.01),
            min_silence_ms=self.min_silence_ms,
            max_utterance_s=self.max_utterance_s,
        )


@dataclass
class _Session:
    segmenter: Segmenter
    next_seq: int = 0
    held: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    """Chunks waiting for an earlier one, by seq: (offset_samples, pcm)."""
    utterances: int = 0
    starts: dict[str, int] = field(default_factory=dict)
    """Start sample of each open utterance, by id."""


class VadStage:
    """Consumes ``audio.ingest.>``; publishes ``audio.speech.<s>`` and ``vad.<s>``."""

    name = "vad"

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self._sessions: dict[str, _Session] = {}
        self._publisher: Publisher | None = None

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        consume(router, "vad", self.name, lambda: publisher, self.handle)

    async def start(self, sessions: SessionStore) -> None:
        SileroVad()  # fail at start-up, not on the first chunk, if the model is unusable

    async def stop(self) -> None:
        self._sessions.clear()

    async def handle(self, decoded: Decoded, subject: str) -> None:
        contract = decoded.contract
        if isinstance(contract, v1.AudioChunkMeta):
            await self._on_chunk(contract, decoded.pcm)
        elif isinstance(contract, v1.SessionEvent):
            await self._on_session_event(contract)
        else:
            raise Rejected(f"expected audio_chunk or session_event, got {contract.CONTRACT_NAME}")

    async def _on_chunk(self, meta: v1.AudioChunkMeta, pcm: bytes) -> None:
        session = self._session(meta.session_id)
        if meta.seq < session.next_seq or meta.seq in session.held:
            log.debug("chunk.duplicate", seq=meta.seq)
            return
        try:
            _check_audio(meta, pcm)
        except Rejected:
            # Count the chunk as consumed so that the session goes on; its
            # samples become silence once the next chunk's offset shows the gap.
            session.held[meta.seq] = (meta.offset_samples, b"")
            await self._drain(meta.session_id, session)
            raise
        session.held[meta.seq] = (meta.offset_samples, pcm)
        await self._drain(meta.session_id, session)
        if len(session.held) > self.settings.reorder_window:
            await self._skip_gap(meta.session_id, session)

    async def _drain(self, session_id: str, session: _Session) -> None:
        """Feed the held chunks that continue the session, in order."""
        while session.next_seq in session.held:
            offset, pcm = session.held.pop(session.next_seq)
            session.next_seq += 1
            await self._feed(session_id, session, offset, pcm)

    async def _feed(self, session_id: str, session: _Session, offset: int, pcm: bytes) -> None:
        gap = offset - session.segmenter.fed_samples
        if gap > 0:
            # Missing or rejected audio: silence keeps every later offset true.
            silence = np.zeros(gap, dtype=np.int16)
            await self._emit(session_id, session, session.segmenter.feed(silence))
        samples = np.frombuffer(pcm, dtype="<i2")
        if len(samples):
            await self._emit(session_id, session, session.segmenter.feed(samples))

    async def _skip_gap(self, session_id: str, session: _Session) -> None:
        log.warning("chunk.missing", session_id=session_id, seq=session.next_seq)
        session.next_seq = min(session.held)
        await self._drain(session_id, session)

    async def _on_session_event(self, event: v1.SessionEvent) -> None:
        if event.kind == "start":
            self._session(event.session_id)
            return
        session = self._sessions.pop(event.session_id, None)
        if session is None:
            log.warning("session.end_without_audio", session_id=event.session_id)
            session = _Session(Segmenter(SileroVad(), self.settings.options()))
        await self._flush_held(event.session_id, session)
        await self._emit(event.session_id, session, session.segmenter.flush())
        await self._publish_session_end(event.session_id, session, event.total_samples)

    async def _flush_held(self, session_id: str, session: _Session) -> None:
        for seq in sorted(session.held):
            offset, pcm = session.held.pop(seq)
            await self._feed(session_id, session, offset, pcm)

    async def _publish_session_end(self, session_id: str, session: _Session, total: int) -> None:
        end = v1.VadEvent(
            session_id=session_id,
            utterance_id="",
            kind="session_end",
            start_samples=total,
            utterances=session.utterances,
        )
        # Both subjects live in one stream: each needs its own de-duplication id.
        for subject in (subjects.vad(session_id), subjects.audio_speech(session_id)):
            await self._pub().publish(end, subject, msg_id=f"{session_id}:session_end:{subject}")

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = _Session(Segmenter(SileroVad(), self.settings.options()))
            self._sessions[session_id] = session
            log.info("session.opened", session_id=session_id)
        return session

    async def _emit(
        self,
        session_id: str,
        session: _Session,
        events: list[SpeechStart | SpeechPiece | SpeechEnd],
    ) -> None:
        for event in events:
            if isinstance(event, SpeechStart):
                session.utterances += 1
                session.starts[event.utterance_id] = event.start_samples
                await self._publish_start(session_id, event)
            elif isinstance(event, SpeechPiece):
                start = session.starts.get(event.utterance_id, event.offset_samples)
                if event.is_last:
                    session.starts.pop(event.utterance_id, None)
                await self._publish_piece(session_id, event, start)
            else:
                await self._publish_end(session_id, event)

    async def _publish_start(self, session_id: str, event: SpeechStart) -> None:
        start = v1.VadEvent(
            session_id=session_id,
            utterance_id=event.utterance_id,
            kind="speech_start",
            start_samples=event.start_samples,
        )
        msg_id = f"{session_id}:{event.utterance_id}:start"
        await self._pub().publish(start, subjects.vad(session_id), msg_id=msg_id)

    async def _publish_piece(
        self, session_id: str, piece: SpeechPiece, utterance_start_samples: int
    ) -> None:
        meta = v1.SpeechAudioMeta(
            session_id=session_id,
            utterance_id=piece.utterance_id,
            piece=piece.piece,
            offset_samples=piece.offset_samples,
            utterance_start_samples=utterance_start_samples,
            is_last=piece.is_last,
            speech_end_at=v1.utc_now() if piece.is_last else None,
        )
        pcm = piece.samples.astype("<i2", copy=False).tobytes()
        msg_id = f"{session_id}:{piece.utterance_id}:piece:{piece.piece}"
        await self._pub().publish_audio(meta, pcm, subjects.audio_speech(session_id), msg_id)

    async def _publish_end(self, session_id: str, event: SpeechEnd) -> None:
        end = v1.VadEvent(
            session_id=session_id,
            utterance_id=event.utterance_id,
            kind="speech_end",
            start_samples=event.start_samples,
            end_samples=event.end_samples,
        )
        msg_id = f"{session_id}:{event.utterance_id}:end"
        await self._pub().publish(end, subjects.vad(session_id), msg_id=msg_id)

    def _pub(self) -> Publisher:
        assert self._publisher is not None, "bind() before handling"
        return self._publisher


def _check_audio(meta: v1.AudioChunkMeta, pcm: bytes) -> None:
    if meta.sample_rate_hz != v1.SAMPLE_RATE_HZ:
        raise Rejected(f"sample_rate_hz must be {v1.SAMPLE_RATE_HZ}; got {meta.sample_rate_hz}")
    if meta.channels != 1:
        raise Rejected(f"channels must be 1; got {meta.channels}")
    if len(pcm) % 2:
        raise Rejected(f"s16le audio needs an even number of bytes; got {len(pcm)}")
