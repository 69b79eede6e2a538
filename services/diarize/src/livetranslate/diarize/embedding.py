"""Speaker embeddings: a vector per stretch of speech, close for the same voice.

:class:`FbankOnnxEmbedder` runs any ONNX speaker model that reads Kaldi log
mel filterbanks, mean-normalised over time, as ``[batch, frames, bins]`` and
returns ``[batch, dimensions]``: CAM++ and ERes2Net from 3D-Speaker and the
WeSpeaker ResNets all do, so trying another of them is a change of
``LIVETRANSLATE_DIARIZE_EMBEDDER_MODEL``. The bundled model is CAM++.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from livetranslate.diarize.features import FbankOptions, kaldi_fbank
from livetranslate.diarize.models import BUNDLED_EMBEDDER, onnx_session
from livetranslate.diarize.segmentation import AudioArray

__all__ = ["Embedding", "FbankOnnxEmbedder", "SpeakerEmbedder"]

Embedding = npt.NDArray[np.float32]
"""A speaker embedding of unit length."""

_MIN_FRAMES: Final = 10
"""Fewer feature frames than this (about 0.1 s) are padded by repetition."""


class SpeakerEmbedder(Protocol):
    """A speaker embedding model. May be called from a worker thread."""

    def embed(self, audio: AudioArray) -> Embedding:
        """The unit-length embedding of ``audio`` (16 kHz mono, one voice)."""
        ...


class FbankOnnxEmbedder:
    """``SpeakerEmbedder`` on an ONNX model that reads Kaldi filterbanks."""

    def __init__(
        self, model_path: Path | None = None, *, mel_bins: int = 80, threads: int = 1
    ) -> None:
        self._session = onnx_session(model_path or BUNDLED_EMBEDDER, threads)
        self._input = self._session.get_inputs()[0].name
        self._fbank = FbankOptions(mel_bins=mel_bins)

    def embed(self, audio: AudioArray) -> Embedding:
        features = kaldi_fbank(audio, self._fbank)
        if len(features) < _MIN_FRAMES:
            features = _repeat_to(features, _MIN_FRAMES, self._fbank.mel_bins)
        features = features - features.mean(axis=0, keepdims=True)
        vector = np.asarray(self._session.run(None, {self._input: features[None]})[0][0])

        return _unit(vector.astype(np.float32))


def _repeat_to(
    features: npt.NDArray[np.float32], frames: int, bins: int
) -> npt.NDArray[np.float32]:
    if not len(features):
        return np.zeros((frames, bins), dtype=np.float32)
    repeats = -(-frames // len(features))
    return np.tile(features, (repeats, 1))[:frames]


def _unit(vector: npt.NDArray[np.float32]) -> Embedding:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
