"""One session's diarization: utterance audio in, labelled speaker turns out.

An utterance is cut into windows the segmentation model can take (10 s for
segmentation-3.0; a 15 s utterance becomes two of 7.5 s). In each window the
segmenter finds the local speakers and when each talks; each local speaker's
solo speech becomes one *voice* (an embedding), the clusterer labels the
voices of the window together, and every stretch of a local speaker's
activity becomes a turn under its label. Overlapped speech gives overlapping
turns, one per speaker.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from livetranslate.diarize.clustering import Assignment, OnlineClusterer, Voice
from livetranslate.diarize.embedding import SpeakerEmbedder
from livetranslate.diarize.segmentation import AudioArray, SpeakerActivity, SpeakerSegmenter

__all__ = ["DiarizerOptions", "LabelledTurn", "SessionDiarizer"]

SAMPLE_RATE_HZ = 16_000

Run = tuple[int, int]
"""Frames ``[first, last)`` of a window."""


@dataclass(frozen=True)
class LabelledTurn:
    """A speaker talking from one session sample to another."""

    speaker: str
    start_samples: int
    end_samples: int
    confidence: float


class DiarizerOptions(BaseModel):
    """How segmentation output becomes turns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_turn_s: float = Field(
        default=0.1,
        ge=0.0,
        description="Activity shorter than this (after bridging gaps) is dropped as a "
        "flicker of the segmentation model.",
    )
    bridge_gap_s: float = Field(
        default=0.25,
        ge=0.0,
        description="A pause in one speaker's activity shorter than this does not end the "
        "turn, so a breath does not split a sentence into two turns.",
    )
    min_solo_s: float = Field(
        default=0.3,
        ge=0.0,
        description="Speech alone a local speaker needs for its embedding to be taken from "
        "solo speech only; below it, overlapped frames are used as well.",
    )


class SessionDiarizer:
    """Labels one session's utterances, in order, with speakers stable for the session.

    Not thread-safe: a session's utterances are diarized one at a time.
    """

    def __init__(
        self,
        segmenter: SpeakerSegmenter,
        embedder: SpeakerEmbedder,
        clusterer: OnlineClusterer,
        options: DiarizerOptions | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.embedder = embedder
        self.clusterer = clusterer
        self.options = options or DiarizerOptions()

    def diarize(self, audio: AudioArray, start_samples: int) -> list[LabelledTurn]:
        """Turns of an utterance whose first sample is session sample ``start_samples``.

        Every utterance gets at least one turn: when the segmenter hears nobody
        in it, the whole utterance is one voice.
        """
        turns = [
            turn
            for offset, window in self._windows(audio)
            for turn in self._window_turns(window, start_samples + offset)
        ]
        if not turns and len(audio):
            turns = self._whole(audio, start_samples)
        # A turn cut by a window edge is joined again.
        merged = _merge_same_speaker(turns)

        return sorted(merged, key=lambda turn: (turn.start_samples, turn.speaker))

    def _windows(self, audio: AudioArray) -> Iterator[tuple[int, AudioArray]]:
        """Equal windows no longer than the segmenter takes."""
        limit = max(int(self.segmenter.window_s * SAMPLE_RATE_HZ), 1)
        count = max(-(-len(audio) // limit), 1)
        bounds = np.linspace(0, len(audio), count + 1).astype(int)
        for start, end in itertools.pairwise(bounds):
            yield int(start), audio[start:end]

    def _window_turns(self, window: AudioArray, start_samples: int) -> list[LabelledTurn]:
        activity = self.segmenter.activity(window)
        found = [
            (runs, voice)
            for speaker in range(activity.speakers)
            if (runs := self._runs(activity.active[:, speaker], activity))
            and (voice := self._voice(window, activity, speaker)) is not None
        ]
        assignments = self.clusterer.assign([voice for _, voice in found])
        turns = []
        for (runs, _), assignment in zip(found, assignments, strict=True):
            for first, last in runs:
                start, end = activity.frame_span(first, last)
                end = min(end, len(window))
                turns.append(_turn(assignment, start_samples + start, start_samples + end))

        return turns

    def _runs(self, active: npt.NDArray[np.bool_], activity: SpeakerActivity) -> list[Run]:
        """Runs of activity with short pauses bridged and flickers dropped."""
        step_s = activity.frame_step_samples / SAMPLE_RATE_HZ
        bridged: list[Run] = []
        for first, last in _runs(active):
            if bridged and (first - bridged[-1][1]) * step_s < self.options.bridge_gap_s:
                bridged[-1] = (bridged[-1][0], last)
            else:
                bridged.append((first, last))

        return [(a, b) for a, b in bridged if (b - a) * step_s >= self.options.min_turn_s]

    def _voice(self, window: AudioArray, activity: SpeakerActivity, speaker: int) -> Voice | None:
        """The embedding of a local speaker's solo speech (or all its speech, if little)."""
        active = activity.active[:, speaker]
        solo = active & (activity.active.sum(axis=1) == 1)
        step_s = activity.frame_step_samples / SAMPLE_RATE_HZ
        frames = solo if solo.sum() * step_s >= self.options.min_solo_s else active
        pieces = [window[slice(*activity.frame_span(a, b))] for a, b in _runs(frames)]
        speech = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        if not len(speech):
            return None

        return Voice(self.embedder.embed(speech), len(speech) / SAMPLE_RATE_HZ)

    def _whole(self, audio: AudioArray, start_samples: int) -> list[LabelledTurn]:
        voice = Voice(self.embedder.embed(audio), len(audio) / SAMPLE_RATE_HZ)
        (assignment,) = self.clusterer.assign([voice])
        return [_turn(assignment, start_samples, start_samples + len(audio))]


def _turn(assignment: Assignment, start: int, end: int) -> LabelledTurn:
    return LabelledTurn(assignment.speaker, start, end, assignment.confidence)


def _runs(active: npt.NDArray[np.bool_]) -> list[Run]:
    """``[first, last)`` of every run of True."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _merge_same_speaker(turns: list[LabelledTurn]) -> list[LabelledTurn]:
    """Join turns of one speaker that touch or overlap (two local speakers, one label)."""
    merged: list[LabelledTurn] = []
    for turn in sorted(turns, key=lambda t: (t.speaker, t.start_samples)):
        last = merged[-1] if merged else None
        if last and last.speaker == turn.speaker and turn.start_samples <= last.end_samples:
            end = max(last.end_samples, turn.end_samples)
            confidence = min(last.confidence, turn.confidence)
            merged[-1] = LabelledTurn(turn.speaker, last.start_samples, end, confidence)
        else:
            merged.append(turn)
    return merged
