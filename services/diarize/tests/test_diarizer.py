"""Tests for :mod:`livetranslate.diarize.diarizer`.

The first tests pin the logic with scripted engines: audio whose sample
values say who speaks (``person / 10``, 0 for silence, ``OVERLAP`` for
persons 1 and 2 at once), a segmenter that reads those values back as local
speakers (numbered by order of appearance, as a real model numbers them),
and an embedder that answers each person's own unit vector. The rest run the
bundled models on real recordings.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from livetranslate.diarize import (
    UNKNOWN,
    CentroidClusterer,
    ClusterOptions,
    FbankOnnxEmbedder,
    LabelledTurn,
    PyannoteSegmenter,
    SessionDiarizer,
    SpeakerActivity,
)
from livetranslate.diarize.scoring import Turn, diarization_error_rate, read_rttm

SR = 16_000
STEP = 160
OVERLAP = 0.99
DATA = Path(__file__).parents[3] / "tests" / "data"
SAMPLE = DATA / "pyannote" / "sample.wav"


def _persons(value: float) -> tuple[int, ...]:
    if value == np.float32(OVERLAP):
        return (1, 2)
    return (round(value * 10),) if value > 0 else ()


class ValueSegmenter:
    """Local speakers read from the sample values, one frame per 10 ms."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s

    def activity(self, audio: npt.NDArray[np.float32]) -> SpeakerActivity:
        centres = audio[STEP // 2 :: STEP]
        order: list[int] = []
        for value in centres:
            order += [p for p in _persons(float(value)) if p not in order]
        active = np.zeros((len(centres), 3), dtype=bool)
        for frame, value in enumerate(centres):
            for person in _persons(float(value)):
                active[frame, order.index(person)] = True
        return SpeakerActivity(active, STEP, STEP // 2)


class ValueEmbedder:
    """Each person's own axis; the person is the commonest single-person value."""

    def embed(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        persons = [p for v in audio for p in _persons(float(v)) if v != np.float32(OVERLAP)]
        vector = np.zeros(8, dtype=np.float32)
        vector[max(set(persons), key=persons.count) if persons else 0] = 1.0
        return vector


def speech(*parts: tuple[float, float]) -> npt.NDArray[np.float32]:
    """Audio of ``(value, seconds)`` parts, in order."""
    return np.concatenate([np.full(int(s * SR), v, dtype=np.float32) for v, s in parts])


def scripted(window_s: float = 10.0) -> SessionDiarizer:
    return SessionDiarizer(ValueSegmenter(window_s), ValueEmbedder(), CentroidClusterer())


def spans(turns: Sequence[LabelledTurn]) -> list[tuple[str, float, float]]:
    return [
        (t.speaker, round(t.start_samples / SR, 2), round(t.end_samples / SR, 2)) for t in turns
    ]


def test_speaker_change_inside_an_utterance_gives_one_turn_each() -> None:
    turns = scripted().diarize(speech((0.1, 2.0), (0.2, 1.5)), start_samples=SR)

    assert spans(turns) == [("S1", 1.0, 3.0), ("S2", 3.0, 4.5)]


def test_labels_stay_with_their_person_across_utterances() -> None:
    diarizer = scripted()
    diarizer.diarize(speech((0.1, 2.0), (0.2, 2.0)), 0)

    later = diarizer.diarize(speech((0.2, 1.0), (0.1, 1.0)), 10 * SR)

    assert [t.speaker for t in later] == ["S2", "S1"]


def test_overlapped_speech_gives_overlapping_turns() -> None:
    audio = speech((0.1, 2.0), (OVERLAP, 0.5), (0.2, 2.0))

    turns = scripted().diarize(audio, 0)

    assert spans(turns) == [("S1", 0.0, 2.5), ("S2", 2.0, 4.5)]


def test_a_breath_inside_one_speakers_speech_does_not_split_the_turn() -> None:
    audio = speech((0.1, 1.0), (0.0, 0.15), (0.1, 1.0))

    assert spans(scripted().diarize(audio, 0)) == [("S1", 0.0, 2.15)]


def test_utterance_where_the_segmenter_hears_nobody_is_one_turn() -> None:
    diarizer = scripted()
    diarizer.diarize(speech((0.1, 2.0)), 0)

    turns = diarizer.diarize(speech((0.0, 1.0)), 5 * SR)

    assert len(turns) == 1
    assert (turns[0].start_samples, turns[0].end_samples) == (5 * SR, 6 * SR)


def test_utterance_longer_than_the_window_is_cut_and_keeps_its_labels() -> None:
    audio = speech((0.1, 1.8), (0.2, 2.6), (0.1, 1.6))

    turns = scripted(window_s=3.0).diarize(audio, 0)

    # Two windows of 3 s; person 2's turn crosses the edge and is joined again.
    assert spans(turns) == [("S1", 0.0, 1.8), ("S2", 1.8, 4.4), ("S1", 4.4, 6.0)]


def test_a_short_first_utterance_is_labelled_unknown() -> None:
    turns = scripted().diarize(speech((0.1, 0.3)), 0)

    assert [t.speaker for t in turns] == [UNKNOWN]


# The bundled models on real speech.


def _read(path: Path) -> npt.NDArray[np.float32]:
    with wave.open(str(path)) as file:
        assert (file.getframerate(), file.getnchannels()) == (SR, 1)
        pcm = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def segmenter() -> PyannoteSegmenter:
    return PyannoteSegmenter()


@pytest.fixture(scope="module")
def embedder() -> FbankOnnxEmbedder:
    return FbankOnnxEmbedder()


def _real(segmenter: PyannoteSegmenter, embedder: FbankOnnxEmbedder) -> SessionDiarizer:
    return SessionDiarizer(segmenter, embedder, CentroidClusterer(ClusterOptions()))


SAMPLE_UTTERANCES_S = ((6.584, 21.584), (21.624, 30.0))
"""Where the VAD stage, with its defaults, cuts the sample call (15 s is its maximum)."""


@pytest.mark.model
def test_sample_call_in_vad_utterances_scores_a_low_der(
    segmenter: PyannoteSegmenter, embedder: FbankOnnxEmbedder
) -> None:
    audio, diarizer = _read(SAMPLE), _real(segmenter, embedder)
    hypothesis = [
        Turn(t.speaker, t.start_samples / SR, t.end_samples / SR)
        for start_s, end_s in SAMPLE_UTTERANCES_S
        for t in diarizer.diarize(audio[int(start_s * SR) : int(end_s * SR)], int(start_s * SR))
    ]

    rate = diarization_error_rate(read_rttm(SAMPLE.with_suffix(".rttm")), hypothesis)

    print(f"sample call in-process: DER {rate.der:.3f} mapping {rate.mapping}")
    assert diarizer.clusterer.speakers == ("S1", "S2")
    # Measured 0.004 (0.09 without a collar); the margin allows other CPUs' rounding.
    assert rate.der <= 0.05


@pytest.mark.model
def test_sample_call_cut_into_short_utterances_keeps_two_main_speakers(
    segmenter: PyannoteSegmenter, embedder: FbankOnnxEmbedder
) -> None:
    """3 s pieces: every piece must be linked to the others by its embedding alone."""
    audio, diarizer = _read(SAMPLE), _real(segmenter, embedder)
    pieces = [
        (start, min(start + 3 * SR, int(end_s * SR)))
        for start_s, end_s in SAMPLE_UTTERANCES_S
        for start in range(int(start_s * SR), int(end_s * SR), 3 * SR)
    ]
    hypothesis = [
        Turn(t.speaker, t.start_samples / SR, t.end_samples / SR)
        for start, end in pieces
        for t in diarizer.diarize(audio[start:end], start)
    ]

    rate = diarization_error_rate(read_rttm(SAMPLE.with_suffix(".rttm")), hypothesis)

    print(f"sample call in 3 s pieces: DER {rate.der:.3f} speakers {diarizer.clusterer.speakers}")
    assert diarizer.clusterer.speakers == ("S1", "S2")
    # Measured 0.069: mostly the pieces too short to open a speaker, left 'unknown'.
    assert rate.der <= 0.10


@pytest.mark.model
def test_single_speaker_session_gets_one_label(
    segmenter: PyannoteSegmenter, embedder: FbankOnnxEmbedder
) -> None:
    diarizer, offset = _real(segmenter, embedder), 0
    labels = set()
    for path in sorted((DATA / "librivox").glob("*.wav")):
        audio = _read(path)
        labels |= {t.speaker for t in diarizer.diarize(audio, offset)}
        offset += len(audio) + SR

    assert labels == {"S1"}
    assert diarizer.clusterer.speakers == ("S1",)


@pytest.mark.model
def test_short_utterance_takes_a_known_label_or_unknown_and_opens_no_speaker(
    segmenter: PyannoteSegmenter, embedder: FbankOnnxEmbedder
) -> None:
    audio, diarizer = _read(SAMPLE), _real(segmenter, embedder)
    for start_s, end_s in SAMPLE_UTTERANCES_S:
        diarizer.diarize(audio[int(start_s * SR) : int(end_s * SR)], int(start_s * SR))
    before = diarizer.clusterer.speakers
    # 0.3 s slices: a cough's length, from each speaker and from the silence before the call.
    slices_s = (0.0, 8.6, 15.0, 25.0, 29.0)

    labels = [
        {t.speaker for t in diarizer.diarize(audio[int(s * SR) : int((s + 0.3) * SR)], int(s * SR))}
        for s in slices_s
    ]

    assert all(found <= {*before, UNKNOWN} for found in labels), labels
    assert diarizer.clusterer.speakers == before
