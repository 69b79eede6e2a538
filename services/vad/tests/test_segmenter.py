"""Tests for :mod:`livetranslate.vad.segmenter`.

Most tests run the real Silero model on real read speech (the LibriVox recordings
in ``tests/data/librivox``); a few pin the state machine exactly with a scripted
model that returns given probabilities.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from livetranslate.contracts.v1 import SAMPLE_RATE_HZ
from livetranslate.vad.segmenter import (
    Event,
    Segmenter,
    SileroVad,
    SpeechEnd,
    SpeechPiece,
    SpeechStart,
    VadOptions,
)

Pcm = npt.NDArray[np.int16]

LIBRIVOX = Path(__file__).parents[3] / "tests" / "data" / "librivox"
RECORDINGS = sorted(LIBRIVOX.glob("*.wav"))
LONGEST = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"  # 7.1 s
SHORTEST = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"  # 3.0 s
PAD = VadOptions().speech_pad_ms * SAMPLE_RATE_HZ // 1000


def read_wav(path: Path) -> Pcm:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == SAMPLE_RATE_HZ
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def silence(seconds: float) -> Pcm:
    return np.zeros(round(seconds * SAMPLE_RATE_HZ), dtype=np.int16)


def segment(pcm: Pcm, chunk_samples: int = 320, options: VadOptions | None = None) -> list[Event]:
    """Feed ``pcm`` in chunks to a fresh segmenter and flush it."""
    segmenter = Segmenter(SileroVad(), options)
    events: list[Event] = []
    for offset in range(0, len(pcm), chunk_samples):
        events += segmenter.feed(pcm[offset : offset + chunk_samples])

    return events + segmenter.flush()


def ends(events: Iterable[Event]) -> list[SpeechEnd]:
    return [event for event in events if isinstance(event, SpeechEnd)]


def pieces_of(events: Iterable[Event], utterance_id: str) -> list[SpeechPiece]:
    return [
        event
        for event in events
        if isinstance(event, SpeechPiece) and event.utterance_id == utterance_id
    ]


def comparable(events: Iterable[Event]) -> list[tuple[object, ...]]:
    """Events as plain tuples; pieces carry arrays, which do not compare with ==."""
    return [(type(event).__name__, *_fields(event)) for event in events]


def _fields(event: Event) -> tuple[object, ...]:
    if isinstance(event, SpeechPiece):
        samples = event.samples.tobytes()
        return (event.utterance_id, event.offset_samples, samples, event.piece, event.is_last)

    return astuple(event)


def loud_span(pcm: Pcm, frame_samples: int = 320, fraction: float = 0.15) -> tuple[int, int]:
    """First and last sample of the 20 ms frames louder than ``fraction`` of the loudest.

    An energy measure independent of the model: where the reader's voice is. (At 0.1
    the click that opens recording 0880 would count as voice.)
    """
    frames = pcm[: len(pcm) // frame_samples * frame_samples].astype(np.float64)
    rms = np.sqrt(np.mean(frames.reshape(-1, frame_samples) ** 2, axis=1))
    loud = np.flatnonzero(rms > fraction * rms.max())

    return int(loud[0]) * frame_samples, (int(loud[-1]) + 1) * frame_samples


def energy_around(pcm: Pcm, sample: int, half_width: int = 800) -> float:
    stretch = pcm[max(sample - half_width, 0) : sample + half_width].astype(np.float64)
    return float(np.mean(stretch**2))


class ScriptedVad:
    """A model that answers a fixed list of probabilities, one per window, then 0."""

    window_samples = 512

    def __init__(self, probabilities: Sequence[float]) -> None:
        self._probabilities = list(probabilities)
        self._next = 0

    def probability(self, window: npt.NDArray[np.float32]) -> float:
        assert window.shape == (self.window_samples,)
        index, self._next = self._next, self._next + 1
        return self._probabilities[index] if index < len(self._probabilities) else 0.0

    def reset(self) -> None:
        self._next = 0


def scripted(probabilities: Sequence[float], options: VadOptions | None = None) -> list[Event]:
    """Run a scripted model over noise as long as its script, plus 2 s."""
    windows = len(probabilities) + 2 * SAMPLE_RATE_HZ // 512
    noise = np.random.default_rng(7).integers(-3000, 3000, windows * 512, dtype=np.int16)
    segmenter = Segmenter(ScriptedVad(probabilities), options)

    return segmenter.feed(noise) + segmenter.flush()


# Real speech ----------------------------------------------------------------------


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda path: path.stem[-4:])
def test_each_recording_gives_an_utterance_covering_the_speech(path: Path) -> None:
    pcm = read_wav(path)
    first_loud, last_loud = loud_span(pcm)

    utterances = ends(segment(pcm))

    assert utterances, "read speech must give at least one utterance"
    assert utterances[0].start_samples <= first_loud
    assert utterances[-1].end_samples >= last_loud
    for before, after in pairwise(utterances):
        assert before.end_samples <= after.start_samples


def test_two_recordings_apart_by_two_seconds_give_two_utterances() -> None:
    first, second = read_wav(LONGEST), read_wav(SHORTEST)
    gap = silence(2.0)
    pcm = np.concatenate([first, gap, second])
    second_at = len(first) + len(gap)

    utterances = ends(segment(pcm))

    assert len(utterances) >= 2
    assert utterances[0].end_samples <= len(first) + PAD
    assert utterances[-1].start_samples >= second_at - PAD
    assert all(
        end.end_samples <= len(first) + PAD or end.start_samples >= second_at - PAD
        for end in utterances
    ), "no utterance may bridge the two seconds of silence"


def test_thirty_seconds_of_silence_give_nothing() -> None:
    assert segment(silence(30.0)) == []


@pytest.mark.parametrize("level_dbfs", [-50, -30, -15])
def test_white_noise_gives_nothing(level_dbfs: int) -> None:
    # Silero tells steady broadband noise from speech: on 10 s of white noise its
    # probability stays below 0.1 at every level from -60 to -10 dBFS.
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    noise = np.random.default_rng(1).normal(0, amplitude, 10 * SAMPLE_RATE_HZ)
    pcm = noise.clip(-32768, 32767).astype(np.int16)

    assert segment(pcm) == []


def test_silero_scores_white_noise_low() -> None:
    vad = SileroVad()
    noise = np.random.default_rng(2).normal(0, 1000, 200 * vad.window_samples)
    windows = (noise / 32768).astype(np.float32).reshape(-1, vad.window_samples)

    scores = [vad.probability(window) for window in windows]

    assert max(scores) < 0.2


@pytest.mark.parametrize("chunk_samples", [100 * 16, 777, 48_000])
def test_chunk_size_does_not_change_the_events(chunk_samples: int) -> None:
    pcm = np.concatenate([read_wav(LONGEST), silence(1.0), read_wav(SHORTEST)])

    assert comparable(segment(pcm, chunk_samples)) == comparable(segment(pcm, 20 * 16))


def test_replaying_a_session_gives_the_same_ids() -> None:
    pcm = np.concatenate([read_wav(SHORTEST), silence(1.0), read_wav(SHORTEST)])

    first, second = ends(segment(pcm)), ends(segment(pcm))

    assert [end.utterance_id for end in first] == ["u00001", "u00002"]
    assert first == second


def test_offsets_are_session_sample_indices() -> None:
    pcm = read_wav(SHORTEST)
    lead = 3 * SAMPLE_RATE_HZ

    alone, later = ends(segment(pcm)), ends(segment(np.concatenate([silence(3.0), pcm])))

    # Three seconds of digital silence leave Silero's state a hair different from
    # a fresh start, so allow one 32 ms window.
    assert len(alone) == len(later) == 1
    assert abs(later[0].start_samples - (alone[0].start_samples + lead)) <= 512
    assert abs(later[0].end_samples - (alone[0].end_samples + lead)) <= 512


def test_pieces_are_contiguous_and_cover_each_utterance() -> None:
    pcm = np.concatenate([read_wav(LONGEST), silence(2.0), read_wav(SHORTEST)])
    piece_samples = VadOptions().piece_ms * SAMPLE_RATE_HZ // 1000

    events = segment(pcm)

    for end in ends(events):
        pieces = pieces_of(events, end.utterance_id)
        assert [piece.piece for piece in pieces] == list(range(len(pieces)))
        assert [piece.is_last for piece in pieces] == [False] * (len(pieces) - 1) + [True]
        assert all(len(piece.samples) == piece_samples for piece in pieces[:-1])
        assert pieces[0].offset_samples == end.start_samples
        for before, after in pairwise(pieces):
            assert before.offset_samples + len(before.samples) == after.offset_samples
        audio = np.concatenate([piece.samples for piece in pieces])
        np.testing.assert_array_equal(audio, pcm[end.start_samples : end.end_samples])


def test_events_come_in_order_with_the_last_piece_beside_the_end() -> None:
    events = segment(np.concatenate([read_wav(SHORTEST), silence(2.0)]))

    assert isinstance(events[0], SpeechStart)
    assert isinstance(events[-1], SpeechEnd)
    last_piece = events[-2]
    assert isinstance(last_piece, SpeechPiece) and last_piece.is_last


def test_pieces_flow_while_the_utterance_is_open() -> None:
    segmenter = Segmenter(SileroVad())
    pcm = read_wav(LONGEST)

    events = segmenter.feed(pcm[: 4 * SAMPLE_RATE_HZ])

    assert [type(event) for event in events[:1]] == [SpeechStart]
    assert len(pieces_of(events, "u00001")) >= 15  # ~3.8 s of speech in 200 ms pieces
    assert not ends(events)


def test_long_utterance_is_cut_at_quiet_points() -> None:
    pcm = read_wav(LONGEST)
    options = VadOptions(max_utterance_s=3.0)

    utterances = ends(segment(pcm, options=options))

    assert len(utterances) >= 3
    assert all(end.end_samples - end.start_samples <= 3 * SAMPLE_RATE_HZ for end in utterances)
    for before, after in pairwise(utterances):
        assert before.end_samples == after.start_samples, "the next continues at the cut"
        speech = pcm[before.start_samples : after.end_samples].astype(np.float64)
        assert energy_around(pcm, before.end_samples) < 0.25 * np.mean(speech**2)


def test_cut_utterances_still_cover_all_audio_once() -> None:
    pcm = read_wav(LONGEST)
    events = segment(pcm, options=VadOptions(max_utterance_s=3.0))

    pieces = [event for event in events if isinstance(event, SpeechPiece)]
    audio = np.concatenate([piece.samples for piece in pieces])
    start, end = ends(events)[0].start_samples, ends(events)[-1].end_samples

    np.testing.assert_array_equal(audio, pcm[start:end])


def test_flush_closes_an_open_utterance() -> None:
    segmenter = Segmenter(SileroVad())
    half = read_wav(LONGEST)[: 3 * SAMPLE_RATE_HZ + 100]  # mid-sentence, not whole windows
    opened = segmenter.feed(half)
    start = opened[0]
    assert isinstance(start, SpeechStart)
    assert not ends(opened)

    closing = segmenter.flush()

    assert closing[-1] == SpeechEnd("u00001", start.start_samples, len(half))
    assert isinstance(closing[-2], SpeechPiece) and closing[-2].is_last
    assert segmenter.flush() == []


def test_feeding_after_flush_is_refused() -> None:
    segmenter = Segmenter(SileroVad())
    segmenter.flush()

    with pytest.raises(RuntimeError, match="flushed"):
        segmenter.feed(silence(0.1))


def test_memory_stays_bounded_over_a_long_session() -> None:
    speech = np.concatenate([read_wav(path) for path in RECORDINGS])  # ~25 s, few pauses
    segmenter = Segmenter(SileroVad())
    options = VadOptions()
    bound = (options.cut_search_s + options.piece_ms / 1000 + 0.1) * SAMPLE_RATE_HZ

    most = 0
    for _ in range(4):
        for offset in range(0, len(speech), 1600):
            segmenter.feed(speech[offset : offset + 1600])
            most = max(most, segmenter.buffered_samples)

    assert segmenter.fed_samples == 4 * len(speech)
    assert most <= bound


def test_wrong_pcm_type_is_refused() -> None:
    with pytest.raises(ValueError, match="expected mono int16 PCM"):
        Segmenter(SileroVad()).feed(np.zeros(512, dtype=np.float32))


# State machine, with a scripted model ----------------------------------------------
# Windows are 512 samples (32 ms); default options: 250 ms speech (8 windows) to start,
# 500 ms silence (16 windows) to end, 200 ms (3200 samples) of padding.


def test_a_burst_shorter_than_min_speech_is_dropped() -> None:
    assert scripted([0.0] * 10 + [0.9] * 5 + [0.0] * 30) == []


def test_speech_after_min_speech_starts_an_utterance_with_padding() -> None:
    events = scripted([0.0] * 10 + [0.9] * 20 + [0.0] * 30)

    assert events[0] == SpeechStart("u00001", 10 * 512 - PAD)
    assert ends(events) == [SpeechEnd("u00001", 10 * 512 - PAD, 30 * 512 + PAD)]


def test_padding_stops_at_the_start_of_the_session() -> None:
    events = scripted([0.9] * 20 + [0.0] * 30)

    assert events[0] == SpeechStart("u00001", 0)


def test_wavering_between_thresholds_keeps_the_utterance_open() -> None:
    # 0.4 lies between neg_threshold (0.35) and threshold (0.5): not silence.
    events = scripted([0.9] * 10 + [0.4] * 40 + [0.9] * 10 + [0.0] * 30)

    assert ends(events) == [SpeechEnd("u00001", 0, 60 * 512 + PAD)]


def test_padding_never_reaches_into_the_previous_utterance() -> None:
    options = VadOptions(min_silence_ms=300)  # 10 windows close; pads would overlap
    events = scripted([0.9] * 20 + [0.0] * 10 + [0.9] * 20 + [0.0] * 30, options)

    first, second = ends(events)
    assert first.end_samples == 20 * 512 + PAD
    assert second.start_samples == first.end_samples


def test_a_pause_at_the_maximum_ends_the_utterance_there() -> None:
    # Starts at 10 * 512 - PAD = 1920, so the maximum falls at 49_920, inside the
    # 320 ms pause that begins at 90 * 512: the utterance ends at the pause plus padding.
    options = VadOptions(max_utterance_s=3.0)
    probabilities = [0.0] * 10 + [0.9] * 80 + [0.0] * 10 + [0.9] * 20 + [0.0] * 30

    first, second = ends(scripted(probabilities, options))

    assert first == SpeechEnd("u00001", 10 * 512 - PAD, 90 * 512 + PAD)
    assert second.start_samples == first.end_samples


# Options -------------------------------------------------------------------------


def test_neg_threshold_follows_threshold_by_default() -> None:
    assert VadOptions().neg_threshold == pytest.approx(0.35)
    assert VadOptions(threshold=0.7).neg_threshold == pytest.approx(0.55)
    assert VadOptions(threshold=0.1).neg_threshold == pytest.approx(0.01)
    assert VadOptions(threshold=0.7, neg_threshold=0.2).neg_threshold == 0.2


def test_neg_threshold_above_threshold_is_refused() -> None:
    with pytest.raises(ValidationError, match="neg_threshold"):
        VadOptions(threshold=0.5, neg_threshold=0.6)


def test_options_are_frozen() -> None:
    with pytest.raises(ValidationError):
        VadOptions().threshold = 0.9  # type: ignore[misc]


def test_silero_refuses_a_window_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected a window of 512 samples"):
        SileroVad().probability(np.zeros(480, dtype=np.float32))


def test_silero_accepts_read_only_windows() -> None:
    window = np.zeros(512, dtype=np.float32)
    window.flags.writeable = False

    assert 0.0 <= SileroVad().probability(window) <= 1.0
