"""Turn an audio file into pipeline PCM and cut it into chunks.

Inside the pipeline audio is PCM s16le, mono, 16 kHz
(:data:`livetranslate.contracts.v1.SAMPLE_RATE_HZ`). :func:`decode_file` reads
any container and codec FFmpeg knows (wav, flac, mp3, ogg/opus, webm, mp4/m4a...)
through PyAV and resamples it to that; :func:`chunk_samples` cuts the result into
the chunks a producer sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer

from livetranslate.contracts.v1 import SAMPLE_RATE_HZ

__all__ = [
    "MAX_CHUNK_MS",
    "MIN_CHUNK_MS",
    "AudioDecodeError",
    "chunk_samples",
    "decode_file",
]

MIN_CHUNK_MS: Final = 20
"""Shortest chunk a producer sends; shorter ones cost a message per few samples."""

MAX_CHUNK_MS: Final = 100
"""Longest chunk a producer sends; longer ones add their length to every latency."""

Pcm = npt.NDArray[np.int16]


class AudioDecodeError(ValueError):
    """A file could not be turned into 16 kHz mono PCM; the message says why."""


def decode_file(path: Path) -> Pcm:
    """Decode the first audio stream of ``path`` to int16 mono samples at 16 kHz.

    The whole file is decoded into memory: this serves files a user hands in,
    not endless streams.
    """
    _check_file(path)
    with _open_container(path) as container:
        samples = _decode_audio(container, path)
    if samples.size == 0:
        raise AudioDecodeError(f"{path}: the audio stream decoded to zero samples")

    return samples


def chunk_samples(samples: Pcm, chunk_ms: int) -> Iterator[tuple[int, Pcm]]:
    """Cut ``samples`` into chunks of ``chunk_ms``, yielding ``(offset_samples, chunk)``.

    The last chunk holds what is left and may be shorter. ``chunk_ms`` is checked
    here, before the first chunk is asked for.
    """
    size = _chunk_size_samples(chunk_ms)

    return _chunks(samples, size)


def _check_file(path: Path) -> None:
    # FFmpeg's own messages for these cases ("Invalid data found when processing
    # input") do not tell a user what is wrong with the file.
    if not path.exists():
        raise AudioDecodeError(f"{path}: no such file")
    if not path.is_file():
        raise AudioDecodeError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty (0 bytes)")


def _open_container(path: Path) -> InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        raise AudioDecodeError(
            f"{path}: not a media file FFmpeg recognises ({_reason(error)})"
        ) from error


def _decode_audio(container: InputContainer, path: Path) -> Pcm:
    stream = _audio_stream(container, path)
    try:
        parts = list(_resampled(container, stream))
    except av.error.FFmpegError as error:
        raise AudioDecodeError(
            f"{path}: decoding the {stream.codec_context.name} audio failed ({_reason(error)})"
        ) from error
    if not parts:
        return np.zeros(0, dtype=np.int16)

    return np.concatenate(parts)


def _audio_stream(container: InputContainer, path: Path) -> av.AudioStream:
    if container.streams.audio:
        return container.streams.audio[0]
    found = ", ".join(
        f"{stream.type} ({stream.codec_context.name})" for stream in container.streams
    )

    raise AudioDecodeError(
        f"{path}: no audio stream in this {container.format.name} file; "
        f"found {found or 'no streams at all'}"
    )


def _resampled(container: InputContainer, stream: av.AudioStream) -> Iterator[Pcm]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
    for frame in container.decode(stream):
        yield from (_frame_samples(out) for out in resampler.resample(frame))
    # The resampler holds back a few samples of filter delay until it is flushed.
    yield from (_frame_samples(out) for out in resampler.resample(None))


def _frame_samples(frame: av.AudioFrame) -> Pcm:
    # Packed s16 mono comes out as one row of shape (1, samples); the astype is
    # free and only tells the type checker which of PyAV's dtypes this is.
    return frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)


def _reason(error: av.error.FFmpegError) -> str:
    return str(error.strerror or error)


def _chunk_size_samples(chunk_ms: int) -> int:
    if not MIN_CHUNK_MS <= chunk_ms <= MAX_CHUNK_MS:
        raise ValueError(
            f"chunk_ms must be between {MIN_CHUNK_MS} and {MAX_CHUNK_MS}, got {chunk_ms}"
        )

    return SAMPLE_RATE_HZ * chunk_ms // 1000


def _chunks(samples: Pcm, size: int) -> Iterator[tuple[int, Pcm]]:
    for offset in range(0, len(samples), size):
        yield offset, samples[offset : offset + size]
