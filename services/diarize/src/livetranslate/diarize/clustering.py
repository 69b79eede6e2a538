"""Online clustering: give each voice a session-wide speaker label as it comes.

A session's speakers are kept as centroids of the embeddings assigned to
them. A *voice* (one local speaker of one window, see ``segmentation``) joins
the nearest speaker within ``threshold`` cosine distance, or opens a new one
(``S1``, ``S2``, …). Labels never change once given, so a caption already on
screen keeps its speaker.

Three rules keep that stable:

- The voices of one window are different people (the segmentation model told
  them apart), so no two of them get the same speaker while the cap allows.
- A voice with less than ``min_voice_s`` of speech (a cough, a "yes") is too
  short to trust: it takes the nearest speaker if that one is within
  ``threshold``, else ``unknown``. It never opens a speaker and never moves a
  centroid. Opening a speaker takes more still, ``min_new_speaker_s``: a
  stray speaker made of one noisy embedding stays on screen for the whole
  session, while an ``unknown`` line costs one caption.
- Once ``max_speakers`` are open, a voice that matches none of them takes the
  nearest one anyway, and leaves its centroid alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from livetranslate.diarize.embedding import Embedding

__all__ = [
    "UNKNOWN",
    "Assignment",
    "CentroidClusterer",
    "ClusterOptions",
    "OnlineClusterer",
    "Voice",
]

UNKNOWN: Final = "unknown"
"""The label of a voice too short to open a speaker and close to none."""


@dataclass(frozen=True)
class Voice:
    """One local speaker of a window: its embedding and the speech it was taken from."""

    embedding: Embedding
    speech_s: float


@dataclass(frozen=True)
class Assignment:
    """The speaker a voice was given, and how sure that is."""

    speaker: str
    confidence: float
    """Cosine similarity of the voice to the speaker's centroid, clipped to [0, 1]; 1.0 for
    the voice that opened the speaker, 0.0 for ``unknown``."""
    opened: bool = False


class ClusterOptions(BaseModel):
    """When a voice joins a speaker, and when it may open one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(
        default=0.4,
        gt=0.0,
        lt=2.0,
        description="Cosine distance (1 - similarity) at or below which a voice joins a "
        "speaker. Lower splits one person into several speakers; higher merges people. "
        "0.4 suits the bundled CAM++: on the test call, one person's voices lay 0.1-0.45 "
        "apart, the two people's 0.35-0.65.",
    )
    max_speakers: int = Field(
        default=8,
        ge=1,
        description="Speakers a session may have. Past it, a new voice takes the nearest "
        "existing speaker; set it to the number of people when known.",
    )
    min_voice_s: float = Field(
        default=0.5,
        ge=0.0,
        description="Speech a voice needs to be trusted: shorter voices take the nearest "
        "speaker within threshold, or 'unknown', and never move a centroid.",
    )
    min_new_speaker_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Speech a voice needs to open a new speaker (never less than "
        "min_voice_s); a shorter one that matches nobody is 'unknown' until its speaker "
        "says more. Embeddings of under a second are noisy: at 0.5 s, cutting the test "
        "call into 2 s pieces opened 3 speakers for its 2 people; at 1.0 s, 2.",
    )


class OnlineClusterer(Protocol):
    """Session-wide speaker labels for voices, given window by window, in order."""

    @property
    def speakers(self) -> tuple[str, ...]:
        """Labels opened so far, in the order they were opened."""
        ...

    def assign(self, voices: Sequence[Voice]) -> list[Assignment]:
        """One assignment per voice of a window, in the same order."""
        ...


class CentroidClusterer:
    """``OnlineClusterer`` keeping one centroid (a weighted sum of embeddings) per speaker."""

    def __init__(self, options: ClusterOptions | None = None) -> None:
        self.options = options or ClusterOptions()
        self._labels: list[str] = []
        self._sums: list[npt.NDArray[np.float64]] = []

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def assign(self, voices: Sequence[Voice]) -> list[Assignment]:
        assignments: dict[int, Assignment] = {}
        taken: set[int] = set()
        # Longest first: the best-founded voice of the window chooses first.
        for index in sorted(range(len(voices)), key=lambda i: -voices[i].speech_s):
            speaker, assignment = self._assign(voices[index], taken)
            if speaker is not None:
                taken.add(speaker)
            assignments[index] = assignment

        return [assignments[index] for index in range(len(voices))]

    def _assign(self, voice: Voice, taken: set[int]) -> tuple[int | None, Assignment]:
        distances = self._distances(voice.embedding)
        free = [int(k) for k in np.argsort(distances, kind="stable") if int(k) not in taken]
        trusted = voice.speech_s >= self.options.min_voice_s
        if free and distances[free[0]] <= self.options.threshold:
            if trusted:
                self._sums[free[0]] += voice.speech_s * voice.embedding
            return free[0], self._joined(free[0], distances)
        if len(self._labels) < self.options.max_speakers:
            if voice.speech_s < max(self.options.min_new_speaker_s, self.options.min_voice_s):
                return None, Assignment(UNKNOWN, 0.0)
            return self._open(voice)
        if not trusted:
            return None, Assignment(UNKNOWN, 0.0)
        nearest = free[0] if free else int(np.argmin(distances))

        return nearest, self._joined(nearest, distances)

    def _distances(self, embedding: Embedding) -> npt.NDArray[np.float64]:
        if not self._sums:
            return np.zeros(0)
        centroids = np.stack(self._sums)
        norms = np.maximum(np.linalg.norm(centroids, axis=1), 1e-12)
        distances: npt.NDArray[np.float64] = 1.0 - (centroids @ embedding) / norms
        return distances

    def _open(self, voice: Voice) -> tuple[int, Assignment]:
        self._labels.append(f"S{len(self._labels) + 1}")
        self._sums.append(voice.speech_s * voice.embedding.astype(np.float64))
        index = len(self._labels) - 1

        return index, Assignment(self._labels[index], 1.0, opened=True)

    def _joined(self, index: int, distances: npt.NDArray[np.float64]) -> Assignment:
        confidence = float(np.clip(1.0 - distances[index], 0.0, 1.0))
        return Assignment(self._labels[index], confidence)
