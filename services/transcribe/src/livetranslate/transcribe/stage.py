"""The transcribe stage: utterance audio in, partial and final transcripts out.

Audio pieces are only collected when they arrive; recognition runs in one
worker that always serves a closed utterance (its final) before any open
one (a partial). Under load, partials thin out and finals keep their pace.
Each utterance gets exactly one final: a redelivered last piece finds the
utterance already finished and is skipped, and the final's ``Nats-Msg-Id``
lets the stream drop a repeated publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
import structlog
from faststream.nats import NatsRouter
from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Publisher, Rejected, consume
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings
from livetranslate.transcribe.engine import (
    Recognition,
    Recognizer,
    RecognizerOptions,
    WhisperRecognizer,
)
from livetranslate.transcribe.stability import StablePrefix
from pydantic import Field
from pydantic_settings import SettingsConfigDict

__all__ = ["TranscribeSettings", "TranscribeStage"]

log = structlog.get_logger(__name__)
FINISHED_MEMORY = 4096
"""How many finished utterance ids are remembered to recognise redeliveries."""


class TranscribeSettings(BrokerSettings):
    """``LIVETRANSLATE_TRANSCRIBE_*``: which model, and how often partials come."""

    model_config = SettingsConfigDict(
        env_prefix=f"{PREFIX}TRANSCRIBE_", extra="ignore", frozen=True
    )

    model: str | None = Field(
        default=None, description="Model folder or name; unset uses the bundled tiny.en."
    )
    device: str = Field(default="cpu", pattern="^(cpu|cuda|auto)$", description="Where to run.")
    compute_type: str = Field(default="int8", description="CTranslate2 compute type.")
    cpu_threads: int = Field(default=0, ge=0, description="0 lets CTranslate2 choose.")
    partial_interval_s: float = Field(
        default=1.0, gt=0, le=10, description="Least time between partials of an utterance."
    )
    min_partial_audio_s: float = Field(
        default=0.5, ge=0, description="Audio an utterance needs before its first partial."
    )

    def recognizer_options(self) -> RecognizerOptions:
        return RecognizerOptions(
            model=self.model,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
        )


@dataclass
class _Utterance:
    session_id: str
    utterance_id: str
    start_samples: int
    pieces: list[npt.NDArray[np.int16]] = field(default_factory=list)
    samples: int = 0
    closed: bool = False
    speech_end_at: datetime | None = None
    revision: int = 0
    partial_samples: int = 0
    last_partial_at: float = 0.0
    stability: StablePrefix = field(default_factory=StablePrefix)

    def audio(self) -> npt.NDArray[np.float32]:
        pcm = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0


class TranscribeStage:
    """Consumes ``audio.speech.>``; publishes ``transcript.{partial,final}.<s>``."""

    name = "transcribe"

    def __init__(
        self, settings: TranscribeSettings | None = None, recognizer: Recognizer | None = None
    ) -> None:
        self.settings = settings or TranscribeSettings()
        self._recognizer = recognizer
        self._open: dict[tuple[str, str], _Utterance] = {}
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._publisher: Publisher | None = None
        self._sessions: SessionStore | None = None

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        consume(router, "transcribe", self.name, lambda: publisher, self.handle)

    async def start(self, sessions: SessionStore) -> None:
        self._sessions = sessions
        if self._recognizer is None:
            options = self.settings.recognizer_options()
            self._recognizer = await asyncio.to_thread(WhisperRecognizer, options)
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def handle(self, decoded: Decoded, subject: str) -> None:
        contract = decoded.contract
        if isinstance(contract, v1.SpeechAudioMeta):
            self._on_piece(contract, decoded.pcm)
        elif isinstance(contract, v1.VadEvent) and contract.kind == "session_end":
            log.info("session.ended", session_id=contract.session_id)
        else:
            raise Rejected(f"expected speech_audio, got {contract.CONTRACT_NAME}")

    def _on_piece(self, meta: v1.SpeechAudioMeta, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise Rejected(f"s16le audio needs an even number of bytes; got {len(pcm)}")
        key = (meta.session_id, meta.utterance_id)
        if key in self._finished:
            log.debug("piece.after_final", utterance_id=meta.utterance_id)
            return
        utterance = self._open.setdefault(
            key, _Utterance(meta.session_id, meta.utterance_id, meta.utterance_start_samples)
        )
        if meta.piece != len(utterance.pieces):
            log.debug("piece.out_of_order", piece=meta.piece, have=len(utterance.pieces))
            if meta.piece < len(utterance.pieces):
                return
        samples = np.frombuffer(pcm, dtype="<i2")
        utterance.pieces.append(samples)
        utterance.samples += len(samples)
        if meta.is_last:
            utterance.closed = True
            utterance.speech_end_at = meta.speech_end_at
        self._wake.set()

    async def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s())
                continue
            try:
                await (self._finalise(job) if job.closed else self._revise(job))
            except Exception:
                log.exception("recognition.failed", utterance_id=job.utterance_id)
                if job.closed:
                    await self._finalise_empty(job, "error")

    def _poll_s(self) -> float:
        return min(0.1, self.settings.partial_interval_s / 4)

    def _next_job(self) -> _Utterance | None:
        """A closed utterance first; else the open one that waited longest for a partial."""
        closed = [u for u in self._open.values() if u.closed]
        if closed:
            return closed[0]
        now = time.monotonic()
        due = [u for u in self._open.values() if self._partial_due(u, now)]
        return min(due, key=lambda u: u.last_partial_at) if due else None

    def _partial_due(self, utterance: _Utterance, now: float) -> bool:
        enough_audio = utterance.samples >= self.settings.min_partial_audio_s * v1.SAMPLE_RATE_HZ
        new_audio = utterance.samples > utterance.partial_samples
        waited = now - utterance.last_partial_at >= self.settings.partial_interval_s
        return enough_audio and new_audio and waited

    async def _revise(self, utterance: _Utterance) -> None:
        utterance.partial_samples = utterance.samples
        utterance.last_partial_at = time.monotonic()
        recognition = await self._recognize(utterance, word_timestamps=False)
        if utterance.closed or not recognition.text:
            return
        stable, _tail = utterance.stability.update(recognition.text.split())
        partial = self._transcript(utterance, recognition, "partial", stable_text=stable)
        utterance.revision += 1
        msg_id = f"{utterance.session_id}:{utterance.utterance_id}:r{partial.revision}"
        await self._pub().publish(partial, _subject("partial", utterance), msg_id=msg_id)

    async def _finalise(self, utterance: _Utterance) -> None:
        recognition = await self._recognize(utterance, word_timestamps=True)
        final = self._transcript(utterance, recognition, "final", stable_text=recognition.text)
        await self._publish_final(utterance, final)

    async def _finalise_empty(self, utterance: _Utterance, reason: str) -> None:
        final = v1.Transcript(
            session_id=utterance.session_id,
            utterance_id=utterance.utterance_id,
            kind="final",
            revision=utterance.revision,
            text="",
            start_s=utterance.start_samples / v1.SAMPLE_RATE_HZ,
            end_s=(utterance.start_samples + utterance.samples) / v1.SAMPLE_RATE_HZ,
            speech_end_at=utterance.speech_end_at,
            dropped=reason,
        )
        await self._publish_final(utterance, final)

    async def _publish_final(self, utterance: _Utterance, final: v1.Transcript) -> None:
        msg_id = f"{utterance.session_id}:{utterance.utterance_id}:final"
        await self._pub().publish(final, _subject("final", utterance), msg_id=msg_id)
        key = (utterance.session_id, utterance.utterance_id)
        self._open.pop(key, None)
        self._finished[key] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)

    async def _recognize(self, utterance: _Utterance, *, word_timestamps: bool) -> Recognition:
        assert self._recognizer is not None, "start() before recognising"
        recognizer = self._recognizer
        audio = utterance.audio()
        language = await self._language(utterance.session_id)
        return await asyncio.to_thread(
            lambda: recognizer.recognize(audio, language=language, word_timestamps=word_timestamps)
        )

    async def _language(self, session_id: str) -> str | None:
        """The session's configured spoken language; None lets the model detect it."""
        if self._sessions is None:
            return None
        return (await self._sessions.get(session_id)).source_language

    def _transcript(
        self, utterance: _Utterance, recognition: Recognition, kind: str, *, stable_text: str
    ) -> v1.Transcript:
        offset_s = utterance.start_samples / v1.SAMPLE_RATE_HZ
        words = tuple(
            v1.Word(
                text=word.text,
                start_s=offset_s + word.start_s,
                end_s=offset_s + word.end_s,
                probability=min(max(word.probability, 0.0), 1.0),
            )
            for word in recognition.words
        )
        return v1.Transcript(
            session_id=utterance.session_id,
            utterance_id=utterance.utterance_id,
            kind="final" if kind == "final" else "partial",
            revision=utterance.revision,
            text=recognition.text,
            stable_text=stable_text,
            words=words,
            language=recognition.language,
            start_s=offset_s,
            end_s=offset_s + utterance.samples / v1.SAMPLE_RATE_HZ,
            speech_end_at=utterance.speech_end_at,
            processing_s=recognition.processing_s,
            dropped=recognition.dropped,
        )

    def _pub(self) -> Publisher:
        assert self._publisher is not None, "bind() before publishing"
        return self._publisher


def _subject(kind: str, utterance: _Utterance) -> str:
    return subjects.transcript(kind, utterance.session_id)
