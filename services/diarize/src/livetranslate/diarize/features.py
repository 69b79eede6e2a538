"""Log mel filterbank features computed the way Kaldi computes them, in NumPy.

Speaker-embedding models of the 3D-Speaker and WeSpeaker families were
trained on Kaldi ``fbank`` features (as ``torchaudio.compliance.kaldi.fbank``
makes them); computing the same numbers here keeps torch out of the stage.
Defaults follow Kaldi's: 25 ms frames every 10 ms, DC offset removed,
pre-emphasis 0.97, Povey window, FFT size rounded up to a power of two,
triangular mel bins from 20 Hz to Nyquist, natural log, no dither, and only
frames that fit entirely in the audio (``snip_edges``).
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["FbankOptions", "kaldi_fbank"]

_PREEMPHASIS: Final = 0.97
_POVEY_POWER: Final = 0.85
_LOW_HZ: Final = 20.0
_FLOOR: Final = float(np.finfo(np.float32).eps)


class FbankOptions:
    """Frame geometry and bin count; the defaults are what CAM++ was trained on."""

    __slots__ = ("frame_ms", "mel_bins", "sample_rate_hz", "shift_ms")

    def __init__(
        self,
        *,
        mel_bins: int = 80,
        sample_rate_hz: int = 16_000,
        frame_ms: int = 25,
        shift_ms: int = 10,
    ) -> None:
        self.mel_bins = mel_bins
        self.sample_rate_hz = sample_rate_hz
        self.frame_ms = frame_ms
        self.shift_ms = shift_ms

    @property
    def frame_samples(self) -> int:
        return self.sample_rate_hz * self.frame_ms // 1000

    @property
    def shift_samples(self) -> int:
        return self.sample_rate_hz * self.shift_ms // 1000


def kaldi_fbank(
    audio: npt.NDArray[np.float32], options: FbankOptions | None = None
) -> npt.NDArray[np.float32]:
    """``(frames, mel_bins)`` log mel energies of mono audio; no frames when it is too short."""
    options = options or FbankOptions()
    frames = _frames(audio.astype(np.float64), options.frame_samples, options.shift_samples)
    if not len(frames):
        return np.zeros((0, options.mel_bins), dtype=np.float32)
    frames = frames - frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - _PREEMPHASIS * previous) * _povey_window(options.frame_samples)
    fft_size = 1 << (options.frame_samples - 1).bit_length()
    power = np.abs(np.fft.rfft(frames, n=fft_size, axis=1)) ** 2
    banks = _mel_banks(options.mel_bins, fft_size, options.sample_rate_hz)
    energies = power @ banks.T

    return np.log(np.maximum(energies, _FLOOR)).astype(np.float32)


def _frames(
    audio: npt.NDArray[np.float64], frame_samples: int, shift_samples: int
) -> npt.NDArray[np.float64]:
    count = 1 + (len(audio) - frame_samples) // shift_samples if len(audio) >= frame_samples else 0
    index = np.arange(frame_samples)[None, :] + shift_samples * np.arange(count)[:, None]
    frames: npt.NDArray[np.float64] = audio[index]
    return frames


@cache
def _povey_window(frame_samples: int) -> npt.NDArray[np.float64]:
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_samples) / (frame_samples - 1))
    window: npt.NDArray[np.float64] = hann**_POVEY_POWER
    return window


@cache
def _mel_banks(mel_bins: int, fft_size: int, sample_rate_hz: int) -> npt.NDArray[np.float64]:
    """``(mel_bins, fft_size // 2 + 1)`` triangles, equally spaced on Kaldi's mel scale."""
    low, high = _mel(_LOW_HZ), _mel(sample_rate_hz / 2)
    step = (high - low) / (mel_bins + 1)
    left = low + step * np.arange(mel_bins)[:, None]
    centre, right = left + step, left + 2 * step
    bins = _mel(sample_rate_hz / fft_size * np.arange(fft_size // 2, dtype=np.float64))[None, :]
    rising, falling = (bins - left) / (centre - left), (right - bins) / (right - centre)
    banks = np.maximum(0.0, np.minimum(rising, falling))
    # Kaldi leaves the Nyquist bin out of every triangle.
    padded: npt.NDArray[np.float64] = np.pad(banks, ((0, 0), (0, 1)))
    return padded


def _mel(hz: float | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    mel: npt.NDArray[np.float64] = 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)
    return mel
