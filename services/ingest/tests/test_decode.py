"""Tests for :mod:`livetranslate.ingest.decode` on real recordings.

Compressed versions of a LibriVox recording are made in ``tmp_path`` with PyAV's
own encoders, so the tests need no ffmpeg binary and no extra files.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from livetranslate.contracts.v1 import SAMPLE_RATE_HZ
from livetranslate.ingest.decode import AudioDecodeError, chunk_samples, decode_file

LIBRIVOX = Path(__file__).parents[3] / "tests" / "data" / "librivox"
SHORT = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"

# Encoders add priming and padding (AAC: 1024 samples and up to a frame at the end).
LENGTH_TOLERANCE_S = 0.15


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def encode(
    path: Path, samples: npt.NDArray[np.int16], codec: str, rate_hz: int, layout: str = "mono"
) -> None:
    """Write 16 kHz mono ``samples`` to ``path`` with PyAV; the suffix picks the container."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE_HZ
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate_hz, layout=layout)
        assert isinstance(stream, av.AudioStream)
        # The encoder context converts format, layout and rate to what the codec wants.
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_librivox_wav_decodes_to_its_duration() -> None:
    samples = decode_file(SHORT)

    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert len(samples) == 47_840  # 2.99 s, as the wav header says
    np.testing.assert_array_equal(samples, read_wav(SHORT))


@pytest.mark.parametrize(
    ("suffix", "codec", "rate_hz"),
    [
        ("flac", "flac", 16_000),
        ("mp3", "libmp3lame", 22_050),
        ("ogg", "libopus", 48_000),
        ("opus", "libopus", 16_000),
        ("webm", "libopus", 48_000),
        ("m4a", "aac", 16_000),
        ("mp4", "aac", 44_100),
    ],
)
def test_compressed_formats_decode_to_the_same_length(
    tmp_path: Path, suffix: str, codec: str, rate_hz: int
) -> None:
    original = read_wav(SHORT)
    path = tmp_path / f"speech.{suffix}"
    encode(path, original, codec, rate_hz)

    samples = decode_file(path)

    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert abs(len(samples) - len(original)) / SAMPLE_RATE_HZ < LENGTH_TOLERANCE_S
    assert np.abs(samples).max() > 1000, "decoded audio should not be silence"


def test_stereo_44k_comes_out_mono_16k(tmp_path: Path) -> None:
    original = read_wav(SHORT)
    path = tmp_path / "stereo.wav"
    encode(path, original, "pcm_s16le", 44_100, layout="stereo")
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.channels == 2
        assert container.streams.audio[0].codec_context.sample_rate == 44_100

    samples = decode_file(path)

    assert abs(len(samples) - len(original)) / SAMPLE_RATE_HZ < 0.01
    # Up to 44.1 kHz and back down should give the same waveform, not just the length.
    overlap = min(len(samples), len(original))
    correlation = np.corrcoef(samples[:overlap], original[:overlap])[0, 1]
    assert correlation > 0.95


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"

    with pytest.raises(AudioDecodeError, match=r"nowhere\.wav: no such file"):
        decode_file(path)


def test_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()

    with pytest.raises(AudioDecodeError, match=r"empty\.wav: the file is empty \(0 bytes\)"):
        decode_file(path)


def test_text_file_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not a recording\n" * 20)

    with pytest.raises(AudioDecodeError, match=r"notes\.wav: not a media file") as raised:
        decode_file(path)
    assert "Invalid data" in str(raised.value), "FFmpeg's reason should be kept"


def test_video_without_audio_names_what_it_found(tmp_path: Path) -> None:
    path = tmp_path / "picture.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)

    with pytest.raises(AudioDecodeError, match=r"picture\.mkv: no audio stream") as raised:
        decode_file(path)
    assert "found video (mpeg4)" in str(raised.value)


def test_wav_without_samples_decodes_to_nothing(tmp_path: Path) -> None:
    path = tmp_path / "header-only.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)

    with pytest.raises(AudioDecodeError, match="decoded to zero samples"):
        decode_file(path)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(AudioDecodeError, ValueError)


@pytest.mark.parametrize("chunk_ms", [20, 32, 100])
def test_chunks_cover_every_sample_at_their_offsets(chunk_ms: int) -> None:
    samples = read_wav(SHORT)
    size = SAMPLE_RATE_HZ * chunk_ms // 1000

    chunks = list(chunk_samples(samples, chunk_ms))

    assert [offset for offset, _ in chunks] == list(range(0, len(samples), size))
    assert all(len(chunk) == size for _, chunk in chunks[:-1])
    assert 0 < len(chunks[-1][1]) <= size
    np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in chunks]), samples)


def test_chunking_nothing_gives_no_chunks() -> None:
    assert list(chunk_samples(np.zeros(0, dtype=np.int16), 20)) == []


@pytest.mark.parametrize("chunk_ms", [0, 19, 101, 1000])
def test_chunk_ms_out_of_range_is_refused_at_once(chunk_ms: int) -> None:
    with pytest.raises(ValueError, match=rf"chunk_ms must be between 20 and 100, got {chunk_ms}"):
        chunk_samples(np.zeros(320, dtype=np.int16), chunk_ms)
