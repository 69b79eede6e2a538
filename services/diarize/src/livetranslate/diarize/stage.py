"""The diarize stage: utterance audio in, speaker turns out.

Pieces of an utterance are collected as they arrive on ``audio.speech.<s>``;
when the last one comes, the utterance is diarized (segmentation, embeddings,
online clustering, in a worker thread) and its turns are published on
``speaker.<s>`` before the piece is acknowledged. Each session has its own
clusterer, so labels (``S1``, ``S2``…) stay stable for the session; it is
freed at the session's end, or after ``session_idle_s`` without audio.

A session's utterances are diarized one at a time in stream order, so a
replay of the session gives the same labels. A redelivered last piece finds
its utterance finished and is skipped; the turns' ``Nats-Msg-Id`` lets the
stream drop a repeated publish.

Known shortcoming: the clusterer lives in this process's memory. A session
moved to another replica (or a restart mid-session) starts its labels
afresh; keeping the centroids in a KV bucket keyed by session would fix it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import structlog
from faststream.nats import NatsRouter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.diarize.clustering import CentroidClusterer, ClusterOptions
from livetranslate.diarize.diarizer import DiarizerOptions, LabelledTurn, SessionDiarizer
from livetranslate.diarize.embedding import FbankOnnxEmbedder, SpeakerEmbedder
from livetranslate.diarize.segmentation import PyannoteSegmenter, SpeakerSegmenter
from livetranslate.streams import Publisher, Rejected, consume
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings

__all__ = ["DiarizeSettings", "DiarizeStage"]

log = structlog.get_logger(__name__)

FINISHED_MEMORY = 4096
"""How many finished utterance ids are remembered to recognise redeliveries."""


class DiarizeSettings(BrokerSettings):
    """``LIVETRANSLATE_DIARIZE_*``: which models, and how speakers are told apart."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}DIARIZE_", extra="ignore", frozen=True)

    embedder: Literal["fbank-onnx"] = Field(
        default="fbank-onnx",
        description="Speaker embedding engine. fbank-onnx feeds mean-normalised Kaldi "
        "filterbanks to an ONNX model: the bundled CAM++, or embedder_model.",
    )
    embedder_model: Path | None = Field(
        default=None,
        description="ONNX speaker model file; unset uses the bundled CAM++. Any model that "
        "takes [batch, frames, 80] mean-normalised Kaldi fbank fits (3D-Speaker, WeSpeaker).",
    )
    segmentation_model: Path | None = Field(
        default=None,
        description="ONNX segmentation-3.0 file; unset uses the bundled one.",
    )
    threshold: float = Field(
        default=0.4,
        gt=0,
        lt=2,
        description="Cosine distance at or below which a voice joins a speaker; lower "
        "splits people into more speakers, higher merges them.",
    )
    max_speakers: int = Field(
        default=8, ge=1, le=64, description="Speakers a session may have; past it, nearest."
    )
    min_voice_s: float = Field(
        default=0.5,
        ge=0,
        description="Speech a voice needs to be trusted; shorter takes the nearest "
        "speaker within threshold, or 'unknown', and never opens one.",
    )
    min_new_speaker_s: float = Field(
        default=1.0,
        ge=0,
        description="Speech a voice needs to open a new speaker; under it, 'unknown'.",
    )
    onnx_threads: int = Field(
        default=1,
        ge=0,
        description="Threads per model call; 0 lets onnxruntime choose. One was fastest "
        "on two cores: a 12 s utterance took 0.25 s.",
    )
    session_idle_s: float = Field(
        default=900.0,
        gt=0,
        description="A session that sends no audio for this long is forgotten, in case "
        "its end marker never comes.",
    )

    def cluster_options(self) -> ClusterOptions:
        return ClusterOptions(
            threshold=self.threshold,
            max_speakers=self.max_speakers,
            min_voice_s=self.min_voice_s,
            min_new_speaker_s=self.min_new_speaker_s,
        )


@dataclass
class _Utterance:
    start_samples: int
    pieces: list[npt.NDArray[np.int16]] = field(default_factory=list)

    def audio(self) -> npt.NDArray[np.float32]:
        pcm = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0


@dataclass
class _Session:
    diarizer: SessionDiarizer
    open: dict[str, _Utterance] = field(default_factory=dict)
    seen_at: float = field(default_factory=time.monotonic)


class DiarizeStage:
    """Consumes ``audio.speech.>``; publishes ``speaker.<s>``."""

    name = "diarize"

    def __init__(
        self,
        settings: DiarizeSettings | None = None,
        *,
        segmenter: SpeakerSegmenter | None = None,
        embedder: SpeakerEmbedder | None = None,
    ) -> None:
        self.settings = settings or DiarizeSettings()
        self._segmenter = segmenter
        self._embedder = embedder
        self._sessions: dict[str, _Session] = {}
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._publisher: Publisher | None = None

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        consume(router, "diarize", self.name, lambda: publisher, self.handle)

    async def start(self, sessions: SessionStore) -> None:
        # Load at start-up, so a missing or broken model stops the process there.
        if self._segmenter is None:
            self._segmenter = await asyncio.to_thread(
                PyannoteSegmenter,
                self.settings.segmentation_model,
                threads=self.settings.onnx_threads,
            )
        if self._embedder is None:
            self._embedder = await asyncio.to_thread(_load_embedder, self.settings)

    async def stop(self) -> None:
        self._sessions.clear()

    async def handle(self, decoded: Decoded, subject: str) -> None:
        contract = decoded.contract
        if isinstance(contract, v1.SpeechAudioMeta):
            await self._on_piece(contract, decoded.pcm)
        elif isinstance(contract, v1.VadEvent) and contract.kind == "session_end":
            self._end_session(contract.session_id)
        else:
            raise Rejected(f"expected speech_audio or a session_end, got {contract.CONTRACT_NAME}")

    async def _on_piece(self, meta: v1.SpeechAudioMeta, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise Rejected(f"s16le audio needs an even number of bytes; got {len(pcm)}")
        key = (meta.session_id, meta.utterance_id)
        if key in self._finished:
            log.debug("piece.after_turns", utterance_id=meta.utterance_id)
            return
        session = self._session(meta.session_id)
        utterance = session.open.setdefault(
            meta.utterance_id, _Utterance(meta.utterance_start_samples)
        )
        if meta.piece < len(utterance.pieces):
            # A redelivery. Of the last piece, it means the diarization failed: try again.
            log.debug("piece.again", piece=meta.piece, have=len(utterance.pieces))
        else:
            if meta.piece > len(utterance.pieces):
                log.debug("piece.out_of_order", piece=meta.piece, have=len(utterance.pieces))
            utterance.pieces.append(np.frombuffer(pcm, dtype="<i2"))
        if meta.is_last:
            await self._finish(meta, session, utterance)

    async def _finish(self, meta: v1.SpeechAudioMeta, session: _Session, utt: _Utterance) -> None:
        diarizer, audio = session.diarizer, utt.audio()
        turns = await asyncio.to_thread(diarizer.diarize, audio, utt.start_samples)
        for number, turn in enumerate(turns):
            await self._publish(meta, number, turn, len(turns))
        session.open.pop(meta.utterance_id, None)
        self._finished[(meta.session_id, meta.utterance_id)] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        log.debug("utterance.diarized", utterance_id=meta.utterance_id, turns=len(turns))

    async def _publish(
        self, meta: v1.SpeechAudioMeta, number: int, turn: LabelledTurn, count: int
    ) -> None:
        speaker_turn = v1.SpeakerTurn(
            session_id=meta.session_id,
            utterance_id=meta.utterance_id,
            speaker=turn.speaker,
            start_s=turn.start_samples / v1.SAMPLE_RATE_HZ,
            end_s=turn.end_samples / v1.SAMPLE_RATE_HZ,
            confidence=turn.confidence,
            turns=count,
        )
        msg_id = f"{meta.session_id}:{meta.utterance_id}:speaker:{number}"
        await self._pub().publish(speaker_turn, subjects.speaker(meta.session_id), msg_id=msg_id)

    def _session(self, session_id: str) -> _Session:
        now = time.monotonic()
        self._forget_idle(now)
        session = self._sessions.get(session_id)
        if session is None:
            session = _Session(self._new_diarizer())
            self._sessions[session_id] = session
            log.info("session.opened", session_id=session_id)
        session.seen_at = now
        return session

    def _new_diarizer(self) -> SessionDiarizer:
        assert self._segmenter is not None and self._embedder is not None, "start() first"
        clusterer = CentroidClusterer(self.settings.cluster_options())
        return SessionDiarizer(self._segmenter, self._embedder, clusterer, DiarizerOptions())

    def _end_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        speakers = session.diarizer.clusterer.speakers if session else ()
        log.info("session.ended", session_id=session_id, speakers=len(speakers))

    def _forget_idle(self, now: float) -> None:
        idle = [
            session_id
            for session_id, session in self._sessions.items()
            if now - session.seen_at > self.settings.session_idle_s
        ]
        for session_id in idle:
            log.warning("session.forgotten", session_id=session_id, reason="idle")
            del self._sessions[session_id]

    def _pub(self) -> Publisher:
        assert self._publisher is not None, "bind() before handling"
        return self._publisher


def _load_embedder(settings: DiarizeSettings) -> SpeakerEmbedder:
    """The engine ``settings.embedder`` names; one so far, more are a new branch here."""
    if settings.embedder == "fbank-onnx":
        return FbankOnnxEmbedder(settings.embedder_model, threads=settings.onnx_threads)
    raise AssertionError(f"unknown embedder {settings.embedder!r}")  # the Literal prevents it
