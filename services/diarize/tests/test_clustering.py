"""Tests for :mod:`livetranslate.diarize.clustering`, on made-up embeddings.

Embeddings are unit vectors built from an angle in a plane, so cosine
distances are known exactly: voices a few degrees apart are one person,
voices 90 degrees apart are two.
"""

from __future__ import annotations

import numpy as np
import pytest

from livetranslate.diarize.clustering import (
    UNKNOWN,
    CentroidClusterer,
    ClusterOptions,
    Voice,
)

LONG_S = 3.0
SHORT_S = 0.3


def voice(degrees: float, speech_s: float = LONG_S) -> Voice:
    angle = np.deg2rad(degrees)
    embedding = np.array([np.cos(angle), np.sin(angle), 0.0, 0.0], dtype=np.float32)
    return Voice(embedding, speech_s)


def labels(clusterer: CentroidClusterer, *windows: list[Voice]) -> list[list[str]]:
    return [[a.speaker for a in clusterer.assign(window)] for window in windows]


def test_one_speaker_throughout_gets_one_label() -> None:
    clusterer = CentroidClusterer()

    got = labels(clusterer, *[[voice(degrees)] for degrees in (0, 10, -8, 5, 15, 2)])

    assert got == [["S1"]] * 6
    assert clusterer.speakers == ("S1",)


def test_labels_stay_stable_when_speakers_alternate() -> None:
    clusterer = CentroidClusterer()

    got = labels(clusterer, [voice(0)], [voice(90)], [voice(5)], [voice(85)], [voice(-3)])

    assert got == [["S1"], ["S2"], ["S1"], ["S2"], ["S1"]]


def test_voices_of_one_window_get_different_speakers() -> None:
    clusterer = CentroidClusterer(ClusterOptions(threshold=0.5))

    # 40 degrees apart is within threshold, but the segmenter told them apart.
    got = labels(clusterer, [voice(0), voice(40)])

    assert got == [["S1", "S2"]]


def test_longest_voice_of_a_window_chooses_its_speaker_first() -> None:
    clusterer = CentroidClusterer()
    labels(clusterer, [voice(0)], [voice(90)])

    # Both lie nearest S1; the longer one takes it, and the other, far from S2, opens S3.
    got = clusterer.assign([voice(30, 1.0), voice(10, 4.0)])

    assert [a.speaker for a in got] == ["S3", "S1"]


def test_short_first_utterance_is_unknown_and_opens_no_speaker() -> None:
    clusterer = CentroidClusterer()

    (assignment,) = clusterer.assign([voice(0, SHORT_S)])

    assert assignment.speaker == UNKNOWN
    assert assignment.confidence == 0.0
    assert clusterer.speakers == ()


def test_a_voice_too_short_to_open_a_speaker_but_long_enough_to_trust_is_unknown() -> None:
    clusterer = CentroidClusterer(ClusterOptions(min_voice_s=0.5, min_new_speaker_s=1.0))
    labels(clusterer, [voice(0)])

    got = labels(clusterer, [voice(90, 0.8)], [voice(90, 1.2)])

    assert got == [[UNKNOWN], ["S2"]]


def test_short_utterance_takes_the_nearest_confident_speaker() -> None:
    clusterer = CentroidClusterer()
    labels(clusterer, [voice(0)], [voice(90)])

    (assignment,) = clusterer.assign([voice(80, SHORT_S)])

    assert assignment.speaker == "S2"
    assert 0.9 < assignment.confidence <= 1.0


def test_short_utterances_far_from_everyone_are_unknown_never_new_speakers() -> None:
    clusterer = CentroidClusterer()
    labels(clusterer, [voice(0)])

    coughs = labels(clusterer, *[[voice(degrees, SHORT_S)] for degrees in (90, 120, 150, 180)])

    assert coughs == [[UNKNOWN]] * 4
    assert clusterer.speakers == ("S1",)


def test_short_voices_do_not_move_a_centroid() -> None:
    clusterer = CentroidClusterer(ClusterOptions(threshold=0.4))
    labels(clusterer, [voice(0, 1.0)])
    # Many short voices at the edge of S1 would drag a centroid that they updated.
    labels(clusterer, *[[voice(50, SHORT_S)] for _ in range(20)])

    (assignment,) = clusterer.assign([voice(-50)])

    assert assignment.speaker == "S1"


def test_past_the_cap_a_new_voice_takes_the_nearest_existing_speaker() -> None:
    clusterer = CentroidClusterer(ClusterOptions(max_speakers=2))
    labels(clusterer, [voice(0)], [voice(90)])

    got = labels(clusterer, [voice(170)], [voice(100)], [voice(-60)])

    assert got == [["S2"], ["S2"], ["S1"]]
    assert clusterer.speakers == ("S1", "S2")


def test_past_the_cap_voices_of_one_window_still_prefer_different_speakers() -> None:
    clusterer = CentroidClusterer(ClusterOptions(max_speakers=2))
    labels(clusterer, [voice(0)], [voice(90)])

    got = labels(clusterer, [voice(180), voice(200, 1.0), voice(220, 0.8)])

    assert got[0][0] in ("S1", "S2")
    assert got[0][0] != got[0][1]
    assert clusterer.speakers == ("S1", "S2")


def test_the_voice_that_opens_a_speaker_has_full_confidence() -> None:
    clusterer = CentroidClusterer()

    (first,) = clusterer.assign([voice(0)])
    (again,) = clusterer.assign([voice(20)])

    assert (first.speaker, first.confidence, first.opened) == ("S1", 1.0, True)
    assert again.opened is False
    assert again.confidence == pytest.approx(np.cos(np.deg2rad(20)), abs=1e-6)
