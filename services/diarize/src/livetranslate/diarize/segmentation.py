"""Who is speaking in each frame of a short window: local speaker activity.

A :class:`SpeakerSegmenter` looks at a few seconds of audio and says, frame by
frame, which of a few *local* speakers is talking. Local speakers are only
distinct within one call: local speaker 0 of one window and local speaker 0
of the next need not be the same person. Linking them across windows is the
clusterer's job.

:class:`PyannoteSegmenter` runs pyannote's segmentation-3.0 in ONNX. Its
output is a *powerset*: per frame, log-probabilities over the seven sets of at
most two of three local speakers ({}, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}), so
overlapped speech comes out as a set of two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from livetranslate.diarize.models import BUNDLED_SEGMENTATION, onnx_session

__all__ = ["AudioArray", "PyannoteSegmenter", "SpeakerActivity", "SpeakerSegmenter"]

AudioArray = npt.NDArray[np.float32]
"""Mono samples in [-1, 1] at 16 kHz."""

_POWERSET: Final = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
_LOCAL_SPEAKERS: Final = 3
_FRAME_STEP_SAMPLES: Final = 270
"""segmentation-3.0's output rate: one frame per 270 samples (16.875 ms)."""
_RECEPTIVE_FIELD_SAMPLES: Final = 721
"""Samples that one output frame sees (SincNet's conv and pooling stack)."""
_WINDOW_S: Final = 10.0
"""The model was trained on 10 s chunks."""


@dataclass(frozen=True)
class SpeakerActivity:
    """Frame-level activity of a window's local speakers.

    ``active[frame, speaker]`` is True when that local speaker talks in that
    frame; frame ``i`` stands for the samples ``frame_span(i)`` of the window.
    """

    active: npt.NDArray[np.bool_]
    frame_step_samples: int
    first_centre_samples: int

    @property
    def frames(self) -> int:
        return int(self.active.shape[0])

    @property
    def speakers(self) -> int:
        return int(self.active.shape[1])

    def frame_span(self, first: int, last: int) -> tuple[int, int]:
        """Samples (start, end) of the window that frames ``first`` to ``last - 1`` cover."""
        half = self.frame_step_samples // 2
        start = self.first_centre_samples + first * self.frame_step_samples - half
        end = self.first_centre_samples + (last - 1) * self.frame_step_samples + half
        return max(start, 0), end


class SpeakerSegmenter(Protocol):
    """A local speaker segmentation model. May be called from a worker thread."""

    window_s: float
    """The longest audio one call should see; longer audio is cut before calling."""

    def activity(self, audio: AudioArray) -> SpeakerActivity:
        """Which local speakers talk in each frame of ``audio``."""
        ...


class PyannoteSegmenter:
    """``SpeakerSegmenter`` on pyannote segmentation-3.0 (ONNX, bundled)."""

    window_s: float = _WINDOW_S

    def __init__(self, model_path: Path | None = None, *, threads: int = 1) -> None:
        self._session = onnx_session(model_path or BUNDLED_SEGMENTATION, threads)

    def activity(self, audio: AudioArray) -> SpeakerActivity:
        if len(audio) < _RECEPTIVE_FIELD_SAMPLES:
            audio = np.pad(audio, (0, _RECEPTIVE_FIELD_SAMPLES - len(audio)))
        batch = np.ascontiguousarray(audio, dtype=np.float32)[None, None, :]
        log_probabilities = self._session.run(None, {"input": batch})[0][0]
        classes = np.argmax(log_probabilities, axis=1)
        active = np.zeros((len(classes), _LOCAL_SPEAKERS), dtype=bool)
        for index, speakers in enumerate(_POWERSET):
            for speaker in speakers:
                active[classes == index, speaker] = True

        return SpeakerActivity(
            active=active,
            frame_step_samples=_FRAME_STEP_SAMPLES,
            first_centre_samples=_RECEPTIVE_FIELD_SAMPLES // 2,
        )
