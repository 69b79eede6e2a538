"""The transcribe stage: utterance audio in, partial and final transcripts out.

Audio pieces are only collected when they arrive; recognition runs in one
worker thread that always serves a closed utterance (its final) before any
open one (a partial). Partials thin out under load: the least time between
two partials of an utterance stretches so that partials take no more than a
set share of the worker (``partial_load_max``) beside the finals, so that a
final rarely waits. Each utterance gets exactly one final: a redelivered last
piece finds the utterance already finished and is skipped, and the final's
``Nats-Msg-Id`` lets the stream drop a repeated publish.

A partial carries the words that two hypotheses in a row agreed on
(``stable_text``) and then the unstable tail; the final keeps those stable
words and takes only what follows them from its own decode. Sessions share
the loaded models: a session's config may name another model, loaded on
first use and kept for the next sessions that name it.

A piece's message stays un-acked until its utterance's final is out (the
consumer keeps it and renews its ack wait), so a stage that stops
mid-utterance loses nothing: the next instance gets the pieces again, once
their ack wait runs out and so after newer ones, and rebuilds the whole
utterance. Pieces are put in place by number; those that come ahead of a
missing one wait for it up to ``MISSING_PIECE_WAIT_S``. A stage that stops
between publishing a final and acking its pieces publishes the final again on
restart, and the stream drops it only within its duplicate window; remembering
finished utterances in a KV bucket would close that gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import structlog
from faststream.nats import NatsRouter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Delivery, Kept, Publisher, Rejected, consume
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings, ComputeType
from livetranslate.streams.topology import CONSUMERS
from livetranslate.transcribe.engine import (
    BatchRecognizer,
    LanguageDetector,
    Recognition,
    RecognitionJob,
    RecognizedWord,
    Recognizer,
    RecognizerOptions,
    WhisperRecognizer,
    recognize_job,
)
from livetranslate.transcribe.language import LanguageOptions, SessionLanguage
from livetranslate.transcribe.stability import StablePrefix

__all__ = ["SessionStats", "TranscribeSettings", "TranscribeStage"]

log = structlog.get_logger(__name__)
T = TypeVar("T")

FINISHED_MEMORY = 4096
"""How many finished utterance ids are remembered to recognise redeliveries."""
ENDED_SESSIONS_MEMORY = 256
"""How many ended sessions' figures are kept for ``session_stats``."""
WORK_WINDOW_S = 10.0
"""How far back the worker's load is measured."""
MIN_PARTIAL_SHARE = 0.05
"""Share of the worker partials keep however busy finals make it."""
RETRY_LOAD_S = 60.0
"""A model that failed to load is tried again after this long."""
MISSING_PIECE_WAIT_S = 2 * CONSUMERS["transcribe"].ack_wait_s
"""How long pieces that came ahead of a missing one wait for it before the
utterance goes on without it. A piece kept by a stage that stopped comes back
within the consumer's ack wait; twice that leaves room for the retries of a
piece whose handling failed (0.5 + 1 + 2 + 4 s)."""

Kind = Literal["partial", "final"]
Job = tuple["_Utterance", Kind]
Outcome = Recognition | Exception | None
"""A job's recognition, the error it raised, or None: its model failed to load."""
ModelKey = str | None
"""A model name or path from a session config; None for the stage's own model."""


class TranscribeSettings(BrokerSettings):
    """``LIVETRANSLATE_TRANSCRIBE_*``: which model, and how often partials come."""

    model_config = SettingsConfigDict(
        env_prefix=f"{PREFIX}TRANSCRIBE_", extra="ignore", frozen=True
    )

    model: str | None = Field(
        default=None, description="Model folder or name; unset uses the bundled tiny.en."
    )
    device: str = Field(default="cpu", pattern="^(cpu|cuda|auto)$", description="Where to run.")
    compute_type: ComputeType = Field(default="int8", description="CTranslate2 compute type.")
    cpu_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "Threads one decode uses; 0 lets CTranslate2 choose. On 2 cores a short "
            "decode ran no slower on one thread than on two, for 60% of the CPU time: "
            "more cores serve more decodes at once (num_workers) better than one faster."
        ),
    )
    num_workers: int = Field(
        default=2,
        ge=1,
        description=(
            "Decodes that run at once, each on a replica of the model (tiny.en: 40 MB "
            "each). With cpu_threads, at most the cores there are."
        ),
    )
    batch_max: int = Field(
        default=2,
        ge=1,
        description=(
            "Decodes under way at once. Those started together have their encoder "
            "passes batched; beyond num_workers they queue for a replica, which pays "
            "on a GPU, where a larger encoder batch costs little more than one."
        ),
    )
    partial_interval_s: float = Field(
        default=1.0, gt=0, le=10, description="Least time between partials of an utterance."
    )
    min_partial_audio_s: float = Field(
        default=0.8,
        ge=0,
        description=(
            "Audio an utterance needs before its first partial. From 0.6 s of a "
            "LibriVox sentence tiny.en wrote nothing four times in five; from 0.8 s, "
            "the first words."
        ),
    )
    partial_pause_s: float = Field(
        default=0.3,
        ge=0,
        description=(
            "No partial while no audio has come for this long. The VAD sends a piece "
            "every 200 ms while someone speaks and holds audio back in a pause that "
            "may end the utterance: a partial then would be replaced by the final "
            "within half a second, and the final would wait for it. 0 turns this off."
        ),
    )
    partial_load_max: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description=(
            "Share of the worker's time partials may take beside the finals. Beyond it "
            "the partials of every open utterance come less often (first partials "
            "excepted), so that finals keep their pace. Lower it to favour finals."
        ),
    )
    stable_agreement: int = Field(
        default=2,
        ge=1,
        description="Partials in a row that must agree on a word before it is shown as stable.",
    )
    stable_holdback_words: int = Field(
        default=1,
        ge=0,
        description=(
            "Last words of each partial that take no part in the agreement: the audio "
            "of a partial usually ends inside a word, and the guesses at it agree too."
        ),
    )
    stable_min_audio_s: float = Field(
        default=3.0,
        ge=0,
        description=(
            "Partials decoded from less audio than this are shown but take no part in "
            "the agreement: with little context Whisper leaves out words (a leading "
            "'And') that it writes once it hears more, and the final keeps stable words."
        ),
    )
    max_models: int = Field(
        default=3,
        ge=1,
        description="Models kept loaded at once, the stage's own included; more evict the "
        "least recently used.",
    )
    language_min_detect_s: float = Field(
        default=2.0, ge=0, description="Shorter utterances keep the session's language."
    )
    language_switch_probability: float = Field(
        default=0.8, ge=0, le=1, description="Confidence a detection needs to count."
    )
    language_switch_after: int = Field(
        default=2, ge=1, description="Detections in a row that change a session's language."
    )

    def recognizer_options(self, model: str | None = None) -> RecognizerOptions:
        return RecognizerOptions(
            model=model or self.model,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.num_workers,
            max_jobs=self.batch_max,
        )

    def language_options(self) -> LanguageOptions:
        return LanguageOptions(
            min_detect_s=self.language_min_detect_s,
            switch_probability=self.language_switch_probability,
            switch_after=self.language_switch_after,
        )


@dataclass
class SessionStats:
    """What the stage did for one session: what it published and what it withheld."""

    utterances: int = 0
    partials: int = 0
    finals: int = 0
    words: int = 0
    finals_dropped: Counter[str] = field(default_factory=Counter)
    """Finals whose whole text was withheld, by reason."""
    partials_dropped: Counter[str] = field(default_factory=Counter)
    """Partial decodes that kept no text, by reason."""
    cuts: Counter[str] = field(default_factory=Counter)
    """Parts of finals withheld (a loop, an unsure window), by reason."""
    stable_words: int = 0
    """Words shown as stable in partials."""
    stable_words_contradicted: int = 0
    """Stable words a later hypothesis replaced or left out (they are kept)."""
    recognize_s: float = 0.0
    """Wall time the recogniser spent on this session."""
    languages: Counter[str] = field(default_factory=Counter)
    """Finals by language."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "utterances": self.utterances,
            "partials": self.partials,
            "finals": self.finals,
            "words": self.words,
            "finals_dropped": dict(self.finals_dropped),
            "partials_dropped": dict(self.partials_dropped),
            "cuts": dict(self.cuts),
            "stable_words": self.stable_words,
            "stable_words_contradicted": self.stable_words_contradicted,
            "recognize_s": round(self.recognize_s, 3),
            "languages": dict(self.languages),
        }


@dataclass
class _Session:
    session_id: str
    model: ModelKey
    language: SessionLanguage
    stats: SessionStats = field(default_factory=SessionStats)
    ended: bool = False


@dataclass
class _Utterance:
    session_id: str
    utterance_id: str
    start_samples: int
    model: ModelKey = None
    pieces: list[npt.NDArray[np.int16]] = field(default_factory=list)
    """The audio in order, from the first piece up to one still missing."""
    samples: int = 0
    next_piece: int = 0
    """The number of the piece that the audio goes on with."""
    early: dict[int, npt.NDArray[np.int16]] = field(default_factory=dict)
    """Pieces that came ahead of one still missing, by number."""
    last_piece: int | None = None
    """The number of the piece marked last, once it came."""
    missing_timer: asyncio.TimerHandle | None = None
    messages: list[Kept] = field(default_factory=list)
    """The pieces' messages, left un-acked until the final is out."""
    closed: bool = False
    closed_at: float = 0.0
    speech_end_at: datetime | None = None
    revision: int = 0
    partial_attempts: int = 0
    partial_samples: int = 0
    last_partial_at: float = 0.0
    last_piece_at: float = 0.0
    stability: StablePrefix = field(default_factory=StablePrefix)

    @property
    def duration_s(self) -> float:
        return self.samples / v1.SAMPLE_RATE_HZ

    @property
    def complete(self) -> bool:
        """Whether every piece up to the last one is in the audio."""
        return self.last_piece is not None and self.next_piece > self.last_piece

    def audio(self) -> npt.NDArray[np.float32]:
        pcm = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0

    def take(self, number: int, samples: npt.NDArray[np.int16]) -> bool:
        """Put piece ``number`` in its place; False when it was taken before."""
        if number < self.next_piece or number in self.early:
            return False
        self.early[number] = samples
        while self.next_piece in self.early:
            self._append(self.next_piece, self.early.pop(self.next_piece))

        return True

    def skip_missing(self) -> list[int]:
        """Go on without the pieces still missing: the early ones join the audio.

        Returns the numbers of the pieces skipped.
        """
        early = sorted(self.early)
        missing = [n for n in range(self.next_piece, max(early, default=0)) if n not in self.early]
        for number in early:
            self._append(number, self.early.pop(number))

        return missing

    def _append(self, number: int, samples: npt.NDArray[np.int16]) -> None:
        self.pieces.append(samples)
        self.samples += len(samples)
        self.next_piece = number + 1


class _WorkLog:
    """The worker's recent decodes: how busy finals keep it, what a partial costs."""

    def __init__(self, window_s: float = WORK_WINDOW_S) -> None:
        self._window_s = window_s
        self._done: deque[tuple[float, float, Kind]] = deque()

    def add(self, kind: Kind, seconds: float, now: float) -> None:
        self._done.append((now, seconds, kind))
        while self._done and self._done[0][0] < now - self._window_s:
            self._done.popleft()

    def load(self, kind: Kind, now: float) -> float:
        """Share of the last window spent on ``kind``."""
        spent = sum(s for at, s, k in self._done if k == kind and at >= now - self._window_s)
        return spent / self._window_s

    def mean_s(self, kind: Kind) -> float:
        """Mean time of the recent decodes of ``kind``; 0 when there were none."""
        times = [s for _, s, k in self._done if k == kind]
        return sum(times) / len(times) if times else 0.0


class _Models:
    """Recognisers by model, loaded on first use (in a thread) and shared by sessions.

    A model that failed to load is tried again after ``RETRY_LOAD_S``, so that
    an operator can put it in place without restarting the stage.
    """

    def __init__(
        self, load: Callable[[ModelKey], Recognizer], max_models: int, on_change: Callable[[], None]
    ) -> None:
        self._load = load
        self._max_models = max_models
        self._on_change = on_change
        self._loaded: OrderedDict[ModelKey, Recognizer] = OrderedDict()
        self._loading: dict[ModelKey, asyncio.Task[None]] = {}
        self._failed: dict[ModelKey, tuple[str, float]] = {}

    def put(self, key: ModelKey, recognizer: Recognizer) -> None:
        self._loaded[key] = recognizer

    def get(self, key: ModelKey) -> Recognizer | None:
        """The loaded recogniser; None while it loads (the first ask starts that)."""
        recognizer = self._loaded.get(key)
        if recognizer is not None:
            self._loaded.move_to_end(key)
            return recognizer
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[1] >= RETRY_LOAD_S:
            del self._failed[key]
        if key not in self._loading and key not in self._failed:
            self._loading[key] = asyncio.create_task(self._load_in_thread(key))
        return None

    def failure(self, key: ModelKey) -> str | None:
        """Why the model could not be loaded, while that is the last word on it."""
        failed = self._failed.get(key)
        return failed[0] if failed is not None else None

    async def close(self) -> None:
        for task in self._loading.values():
            task.cancel()
        self._loading.clear()

    async def _load_in_thread(self, key: ModelKey) -> None:
        log.info("model.loading_for_session", model=key)
        try:
            self._loaded[key] = await asyncio.to_thread(self._load, key)
        except Exception as error:
            log.warning("model.unavailable", model=key, error=str(error))
            self._failed[key] = (str(error), time.monotonic())
        else:
            self._evict()
        finally:
            self._loading.pop(key, None)
            self._on_change()

    def _evict(self) -> None:
        while len(self._loaded) > self._max_models:
            key = next((k for k in self._loaded if k is not None), None)
            if key is None:
                return
            del self._loaded[key]
            log.info("model.evicted", model=key)


class TranscribeStage:
    """Consumes ``audio.speech.>``; publishes ``transcript.{partial,final}.<s>``."""

    name = "transcribe"

    def __init__(
        self,
        settings: TranscribeSettings | None = None,
        recognizer: Recognizer | None = None,
        load_model: Callable[[ModelKey], Recognizer] | None = None,
    ) -> None:
        self.settings = settings or TranscribeSettings()
        self._recognizer = recognizer
        self._models = _Models(
            load_model or self._load_model, self.settings.max_models, self._wake_worker
        )
        self._open: dict[tuple[str, str], _Utterance] = {}
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._live: dict[str, _Session] = {}
        self._ended: OrderedDict[str, SessionStats] = OrderedDict()
        self._work_log = _WorkLog()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.batch_max, thread_name_prefix="transcribe"
        )
        self._in_flight: dict[tuple[str, str], Kind] = {}
        """The jobs under way, by (session, utterance)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._publisher: Publisher | None = None
        self._sessions: SessionStore | None = None

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        consume(router, "transcribe", self.name, lambda: publisher, self.handle, keeping=True)

    async def start(self, sessions: SessionStore) -> None:
        self._sessions = sessions
        if self._recognizer is None:
            self._recognizer = await asyncio.to_thread(self._load_model, None)
        self._models.put(None, self._recognizer)
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        for task in [self._worker, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # The runner has stopped consuming and closed the connection by now, so
        # the pieces of open utterances cannot be nacked for an early redelivery:
        # released, they reach the next instance once the ack wait runs out.
        for utterance in self._open.values():
            self._release(utterance)
        await self._models.close()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def session_stats(self, session_id: str) -> SessionStats | None:
        """The figures of a live or recently ended session."""
        live = self._live.get(session_id)
        return live.stats if live is not None else self._ended.get(session_id)

    async def handle(self, decoded: Decoded, subject: str, delivery: Delivery) -> None:
        contract = decoded.contract
        if isinstance(contract, v1.SpeechAudioMeta):
            await self._on_piece(contract, decoded.pcm, delivery)
        elif isinstance(contract, v1.VadEvent) and contract.kind == "session_end":
            self._on_session_end(contract.session_id)
        else:
            raise Rejected(f"expected speech_audio, got {contract.CONTRACT_NAME}")

    async def _on_piece(self, meta: v1.SpeechAudioMeta, pcm: bytes, delivery: Delivery) -> None:
        key = (meta.session_id, meta.utterance_id)
        if key in self._finished:
            log.debug("piece.after_final", utterance_id=meta.utterance_id)
            return
        utterance = self._open.get(key) or await self._new_utterance(meta)
        if len(pcm) % 2:
            # Taken without its audio, so that the utterance does not wait for it.
            self._collect(utterance, meta, np.zeros(0, np.int16))
            raise Rejected(f"s16le audio needs an even number of bytes; got {len(pcm)}")
        # A piece taken before is kept too: it may be the same message delivered
        # again, and acking it would ack the one the utterance keeps.
        utterance.messages.append(delivery.keep())
        self._collect(utterance, meta, np.frombuffer(pcm, dtype="<i2"))

    def _collect(
        self, utterance: _Utterance, meta: v1.SpeechAudioMeta, samples: npt.NDArray[np.int16]
    ) -> None:
        if not utterance.take(meta.piece, samples):
            log.debug("piece.repeated", piece=meta.piece)
            return
        utterance.last_piece_at = time.monotonic()
        if meta.is_last:
            utterance.last_piece = meta.piece
            utterance.speech_end_at = meta.speech_end_at
        self._wait_for_missing(utterance)
        self._close_if_complete(utterance)
        self._wake.set()

    def _wait_for_missing(self, utterance: _Utterance) -> None:
        """Give pieces missing ahead of early ones ``MISSING_PIECE_WAIT_S`` to come.

        A stage restarted mid-utterance gets the pieces its predecessor kept
        only once their ack wait runs out, after newer ones.
        """
        if utterance.early and utterance.missing_timer is None:
            utterance.missing_timer = asyncio.get_running_loop().call_later(
                MISSING_PIECE_WAIT_S, self._skip_missing, utterance
            )
        elif not utterance.early and utterance.missing_timer is not None:
            utterance.missing_timer.cancel()
            utterance.missing_timer = None

    def _skip_missing(self, utterance: _Utterance) -> None:
        utterance.missing_timer = None
        if self._open.get((utterance.session_id, utterance.utterance_id)) is not utterance:
            return
        missing = utterance.skip_missing()
        log.warning("piece.missing", utterance_id=utterance.utterance_id, pieces=missing)
        self._close_if_complete(utterance)
        self._wake.set()

    @staticmethod
    def _close_if_complete(utterance: _Utterance) -> None:
        if utterance.complete and not utterance.closed:
            utterance.closed = True
            utterance.closed_at = time.monotonic()

    @staticmethod
    def _release(utterance: _Utterance) -> None:
        """Leave the pieces' messages un-acked for the broker to deliver again."""
        if utterance.missing_timer is not None:
            utterance.missing_timer.cancel()
        for message in utterance.messages:
            message.release()

    async def _new_utterance(self, meta: v1.SpeechAudioMeta) -> _Utterance:
        session = await self._session(meta.session_id)
        session.stats.utterances += 1
        utterance = _Utterance(
            meta.session_id,
            meta.utterance_id,
            meta.utterance_start_samples,
            session.model,
            stability=StablePrefix(
                self.settings.stable_agreement, self.settings.stable_holdback_words
            ),
        )
        self._open[(meta.session_id, meta.utterance_id)] = utterance

        return utterance

    async def _session(self, session_id: str) -> _Session:
        """The session's state, its model and fixed language read from its config."""
        config = (
            await self._sessions.get(session_id)
            if self._sessions is not None
            else v1.SessionConfig(session_id=session_id)
        )
        model = None if config.model in (None, self.settings.model) else config.model
        session = self._live.get(session_id)
        if session is None:
            language = SessionLanguage(config.source_language, self.settings.language_options())
            session = self._live[session_id] = _Session(session_id, model, language)
            log.info("session.opened", session_id=session_id, model=model or "default")
        # A config changed mid-session applies from the next utterance on.
        session.model = model
        session.language.fixed = config.source_language

        return session

    def _on_session_end(self, session_id: str) -> None:
        session = self._live.get(session_id)
        if session is not None:
            session.ended = True
            self._retire_if_done(session_id)

    def _retire_if_done(self, session_id: str) -> None:
        session = self._live.get(session_id)
        if session is None or not session.ended:
            return
        if any(key[0] == session_id for key in self._open):
            return
        del self._live[session_id]
        self._ended[session_id] = session.stats
        while len(self._ended) > ENDED_SESSIONS_MEMORY:
            self._ended.popitem(last=False)
        log.info("session.ended", session_id=session_id, **session.stats.as_dict())

    def _wake_worker(self) -> None:
        self._wake.set()

    async def _work(self) -> None:
        """Keep up to ``batch_max`` decodes going: finals first, then partials due."""
        while True:
            jobs = self._next_jobs(self.settings.batch_max - len(self._in_flight))
            if not jobs:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns
                # normally when it is cancelled just as the event is set, and
                # this loop would then outlive stop().
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s()):
                        await self._wake.wait()
                continue
            try:
                await self._dispatch(jobs)
            except Exception as error:  # preparing the jobs failed: each is concluded so
                for utterance, kind in jobs:
                    self._in_flight.pop(_key(utterance), None)
                    await self._conclude(utterance, kind, error)

    async def _dispatch(self, jobs: list[Job]) -> None:
        """Start recognising ``jobs`` together; each is concluded as soon as it is done."""
        for utterance, kind in jobs:
            self._in_flight[_key(utterance)] = kind
        model = jobs[0][0].model
        recognizer = self._models.get(model)
        if self._models.failure(model) is not None or recognizer is None:
            for utterance, kind in jobs:
                utterance.partial_samples = utterance.samples
                await self._complete(utterance, kind, None)
            return
        prepared = [await self._job(utterance, recognizer, kind) for utterance, kind in jobs]
        started = time.monotonic()
        futures = _submit_all(recognizer, prepared, self._executor)
        for (utterance, kind), future in zip(jobs, futures, strict=True):
            task = asyncio.create_task(self._await_and_complete(utterance, kind, future, started))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _await_and_complete(
        self, utterance: _Utterance, kind: Kind, future: Future[Recognition], started: float
    ) -> None:
        outcome: Outcome
        try:
            outcome = await asyncio.wrap_future(future)
        except Exception as error:
            outcome = error
        # Decodes overlap: each counts for its share of the worker's slots, so
        # that the load stays a share of what the worker can do.
        now = time.monotonic()
        self._work_log.add(kind, (now - started) / self.settings.batch_max, now)
        if isinstance(outcome, Recognition):
            self._stats(utterance).recognize_s += outcome.processing_s
        await self._complete(utterance, kind, outcome)

    async def _complete(self, utterance: _Utterance, kind: Kind, outcome: Outcome) -> None:
        try:
            await self._conclude(utterance, kind, outcome)
        finally:
            # Only now: the session's next job must not overtake this one.
            self._in_flight.pop(_key(utterance), None)
            self._wake.set()

    async def _conclude(self, job: _Utterance, kind: Kind, outcome: Outcome) -> None:
        """Publish what one job's recognition gave; a failed final is finished empty."""
        try:
            if isinstance(outcome, Exception):
                raise outcome
            await (self._finalise(job, outcome) if kind == "final" else self._revise(job, outcome))
        except Exception:
            log.exception("recognition.failed", utterance_id=job.utterance_id)
            if kind == "final":
                await self._give_up(job)

    async def _give_up(self, utterance: _Utterance) -> None:
        """Close an utterance whose decode failed with an empty final, so the session goes on."""
        try:
            await self._finalise_empty(utterance, "error")
        except Exception as error:
            log.exception("final.unpublished", utterance_id=utterance.utterance_id)
            self._open.pop((utterance.session_id, utterance.utterance_id), None)
            # Like a message whose handling failed: the pieces come back later
            # and rebuild the utterance, or are dead-lettered after max_deliver.
            for message in utterance.messages:
                await message.retry(error)

    def _poll_s(self) -> float:
        return min(0.1, self.settings.partial_interval_s / 4)

    def _next_jobs(self, free: int) -> list[Job]:
        """Up to ``free`` jobs to start together: finals first, then partials due.

        Finals go first closed first. Among partials, an utterance still waiting
        for its first one goes first, then the one whose last partial is oldest.
        All on the model of the first, and one per session: a session with a job
        under way gets no other, so its transcripts come out in order. Partials
        leave one slot to finals, so that a final that closes need not wait for
        partials to end. Utterances
        whose model is still loading wait; a closed one whose model failed to load
        is finished at once, without text.
        """
        if free <= 0:
            return []
        busy = {session_id for session_id, _ in self._in_flight}
        ready = [
            u for u in self._open.values() if u.session_id not in busy and self._model_ready(u)
        ]
        now = time.monotonic()
        interval_s = self.partial_interval_s(now)
        finals = sorted((u for u in ready if u.closed), key=lambda u: u.closed_at)
        partials = sorted(
            (u for u in ready if self._partial_due(u, now, interval_s)),
            key=lambda u: (u.revision > 0, u.last_partial_at),
        )
        queue: list[Job] = [(u, "final") for u in finals] + [(u, "partial") for u in partials]
        partial_slots = self._partial_slots()
        jobs: list[Job] = []
        for utterance, kind in queue:
            if len(jobs) == free:
                break
            if kind == "partial" and partial_slots <= 0:
                break
            if utterance.model == queue[0][0].model and utterance.session_id not in busy:
                jobs.append((utterance, kind))
                busy.add(utterance.session_id)
                partial_slots -= kind == "partial"
        return jobs

    def _partial_slots(self) -> int:
        """Partials that may start now: all slots but one, less those under way."""
        slots = max(self.settings.batch_max - 1, 1)
        return slots - sum(1 for kind in self._in_flight.values() if kind == "partial")

    def _model_ready(self, utterance: _Utterance) -> bool:
        return (
            self._models.get(utterance.model) is not None
            or self._models.failure(utterance.model) is not None
        )

    def partial_interval_s(self, now: float | None = None) -> float:
        """Least time between partials of an utterance now: stretched under load."""
        wanted = self.settings.partial_interval_s
        wanting = sum(1 for u in self._open.values() if not u.closed and u.revision > 0)
        cost_s = self._work_log.mean_s("partial")
        if wanting == 0 or cost_s == 0.0:
            return wanted
        final_load = self._work_log.load("final", time.monotonic() if now is None else now)
        share = max(self.settings.partial_load_max - final_load, MIN_PARTIAL_SHARE)

        return max(wanted, wanting * cost_s / share)

    def _partial_due(self, utterance: _Utterance, now: float, interval_s: float) -> bool:
        if utterance.closed:
            return False
        enough_audio = utterance.duration_s >= self.settings.min_partial_audio_s
        new_audio = utterance.samples > utterance.partial_samples
        # The first partial shows that speech is heard: its first try is never held
        # back, and the next tries (after a decode that kept nothing) are not thinned.
        if utterance.revision == 0:
            interval_s = self.settings.partial_interval_s
        elif self._paused(utterance, now):
            return False
        waited = utterance.partial_attempts == 0 or now - utterance.last_partial_at >= interval_s
        return enough_audio and new_audio and waited

    def _paused(self, utterance: _Utterance, now: float) -> bool:
        """Whether the VAD has held the utterance's audio back for ``partial_pause_s``."""
        pause_s = self.settings.partial_pause_s
        return bool(pause_s) and now - utterance.last_piece_at > pause_s

    async def _revise(self, utterance: _Utterance, recognition: Recognition | None) -> None:
        if recognition is None:  # its model failed to load: no partials
            return
        stats = self._stats(utterance)
        if utterance.closed:
            return  # its final is next; this partial would arrive just before it
        if not recognition.text:
            stats.partials_dropped[recognition.dropped or "no_speech"] += 1
            return
        decoded_s = utterance.partial_samples / v1.SAMPLE_RATE_HZ
        counts = decoded_s >= self.settings.stable_min_audio_s
        stable, tail = utterance.stability.update(recognition.text.split(), counts=counts)
        partial = self._transcript(
            utterance,
            "partial",
            text=" ".join(part for part in (stable, tail) if part),
            stable_text=stable,
            language=recognition.language,
            processing_s=recognition.processing_s,
        )
        utterance.revision += 1
        stats.partials += 1
        msg_id = f"{utterance.session_id}:{utterance.utterance_id}:r{partial.revision}"
        await self._pub().publish(partial, _subject("partial", utterance), msg_id=msg_id)

    async def _finalise(self, utterance: _Utterance, recognition: Recognition | None) -> None:
        if recognition is None:
            await self._finalise_empty(utterance, "model_unavailable")
            return
        stats = self._stats(utterance)
        stats.cuts.update(recognition.cuts)
        if recognition.dropped:
            stats.finals_dropped[recognition.dropped] += 1
            # The whole utterance is judged invented: stable words shown go with it.
            utterance.stability.settle([])
            words: tuple[v1.Word, ...] = ()
        else:
            words = self._settled_words(utterance, recognition)
        final = self._transcript(
            utterance,
            "final",
            text=" ".join(word.text for word in words),
            stable_text=" ".join(word.text for word in words),
            language=recognition.language,
            processing_s=recognition.processing_s,
            words=words,
            dropped=recognition.dropped,
        )
        await self._publish_final(utterance, final)

    def _settled_words(
        self, utterance: _Utterance, recognition: Recognition
    ) -> tuple[v1.Word, ...]:
        """The final's words: the stable ones, timed by the decode, then its tail."""
        decoded = _text_words(recognition, utterance.duration_s)
        settlement = utterance.stability.settle([word.text for word in decoded])
        words: list[RecognizedWord] = []
        for text, counterpart in zip(settlement.stable, settlement.counterparts, strict=True):
            if counterpart is not None:
                timed = decoded[counterpart]
                words.append(RecognizedWord(text, timed.start_s, timed.end_s, timed.probability))
            else:
                after_s = words[-1].end_s if words else 0.0
                words.append(RecognizedWord(text, after_s, after_s, 0.0))
        words.extend(decoded[settlement.tail_start :])

        return tuple(self._session_word(utterance, word) for word in words)

    @staticmethod
    def _session_word(utterance: _Utterance, word: RecognizedWord) -> v1.Word:
        offset_s = utterance.start_samples / v1.SAMPLE_RATE_HZ
        return v1.Word(
            text=word.text,
            start_s=offset_s + word.start_s,
            end_s=offset_s + max(word.end_s, word.start_s),
            probability=min(max(word.probability, 0.0), 1.0),
        )

    async def _finalise_empty(self, utterance: _Utterance, reason: str) -> None:
        self._stats(utterance).finals_dropped[reason] += 1
        session = self._live.get(utterance.session_id)
        language = session.language.current if session is not None else None
        final = self._transcript(
            utterance, "final", text="", stable_text="", language=language, dropped=reason
        )
        await self._publish_final(utterance, final)

    async def _publish_final(self, utterance: _Utterance, final: v1.Transcript) -> None:
        msg_id = f"{utterance.session_id}:{utterance.utterance_id}:final"
        await self._pub().publish(final, _subject("final", utterance), msg_id=msg_id)
        stats = self._stats(utterance)
        stats.finals += 1
        stats.words += len(final.words)
        stats.stable_words += utterance.stability.stable_words
        stats.stable_words_contradicted += utterance.stability.contradicted_words
        if final.language and final.text:
            stats.languages[final.language] += 1
        key = (utterance.session_id, utterance.utterance_id)
        self._open.pop(key, None)
        self._finished[key] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        # Only now that the final is out: a stage that stopped before this gets
        # the pieces again and rebuilds the whole utterance.
        for message in utterance.messages:
            await message.ack()
        utterance.messages.clear()
        self._retire_if_done(utterance.session_id)

    async def _job(
        self, utterance: _Utterance, recognizer: Recognizer, kind: Kind
    ) -> RecognitionJob:
        """The utterance's audio so far, to decode as ``kind``."""
        audio = utterance.audio()
        if kind == "partial":
            utterance.partial_samples = utterance.samples
            utterance.partial_attempts += 1
            utterance.last_partial_at = time.monotonic()
        language = await self._language(utterance, recognizer, audio, kind)

        return RecognitionJob(
            audio, language, word_timestamps=kind == "final", draft=kind == "partial"
        )

    async def _language(
        self,
        utterance: _Utterance,
        recognizer: Recognizer,
        audio: npt.NDArray[np.float32],
        kind: Kind,
    ) -> str | None:
        """The language to decode in: fixed by the config, or detected with hysteresis.

        None leaves it to the recogniser (an English-only model says "en").
        """
        session = self._live.get(utterance.session_id)
        if session is None:
            return None
        language = session.language
        if (
            not isinstance(recognizer, LanguageDetector)
            or not recognizer.multilingual
            or not language.needs_detection(utterance.duration_s)
            or (kind == "partial" and language.current is not None)
        ):
            return language.current
        detected, probability = await self._in_worker(lambda: recognizer.detect_language(audio))
        if kind == "partial":
            return detected  # a partial's few words are too few to move the session
        chosen = language.observe(detected, probability, utterance.duration_s)
        if chosen != detected:
            log.debug("language.kept", detected=detected, probability=probability, kept=chosen)

        return chosen

    async def _in_worker(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _load_model(self, key: ModelKey) -> Recognizer:
        return WhisperRecognizer(self.settings.recognizer_options(key))

    def _stats(self, utterance: _Utterance) -> SessionStats:
        session = self._live.get(utterance.session_id)
        if session is None:  # its end was seen and it was retired: count where it went
            return self._ended.setdefault(utterance.session_id, SessionStats())
        return session.stats

    def _transcript(
        self,
        utterance: _Utterance,
        kind: Kind,
        *,
        text: str,
        stable_text: str,
        language: str | None,
        processing_s: float = 0.0,
        words: tuple[v1.Word, ...] = (),
        dropped: str | None = None,
    ) -> v1.Transcript:
        offset_s = utterance.start_samples / v1.SAMPLE_RATE_HZ
        return v1.Transcript(
            session_id=utterance.session_id,
            utterance_id=utterance.utterance_id,
            kind=kind,
            revision=utterance.revision,
            text=text,
            stable_text=stable_text,
            words=words,
            language=language,
            start_s=offset_s,
            end_s=offset_s + utterance.duration_s,
            speech_end_at=utterance.speech_end_at if kind == "final" else None,
            processing_s=processing_s,
            dropped=dropped,
        )

    def _pub(self) -> Publisher:
        assert self._publisher is not None, "bind() before publishing"
        return self._publisher


def _text_words(recognition: Recognition, duration_s: float) -> list[RecognizedWord]:
    """One timed word per word of the text (split at spaces).

    The recogniser's words are its tokens grouped at spaces and at leading
    punctuation, so "ill-disposed" may come as "ill" and "-disposed": these
    are joined again, spanning their pieces' times, with the least sure
    piece's probability.
    """
    pieces = list(recognition.words)
    words = []
    for text in recognition.text.split():
        group: list[RecognizedWord] = []
        while pieces and len("".join(p.text for p in group)) < len(text):
            group.append(pieces.pop(0))
        if group:
            probability = min(p.probability for p in group)
            words.append(RecognizedWord(text, group[0].start_s, group[-1].end_s, probability))
        else:
            words.append(RecognizedWord(text, 0.0, duration_s, 0.0))

    return words


def _submit_all(
    recognizer: Recognizer, jobs: list[RecognitionJob], executor: ThreadPoolExecutor
) -> list[Future[Recognition]]:
    """Start each job: together where the recogniser can batch, else on ``executor``."""
    if isinstance(recognizer, BatchRecognizer):
        return recognizer.submit_many(jobs)
    return [executor.submit(recognize_job, recognizer, job) for job in jobs]


def _key(utterance: _Utterance) -> tuple[str, str]:
    return (utterance.session_id, utterance.utterance_id)


def _subject(kind: str, utterance: _Utterance) -> str:
    return subjects.transcript(kind, utterance.session_id)
