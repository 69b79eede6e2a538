"""Tests for :mod:`livetranslate.diarize.scoring`: RTTM parsing and the DER's parts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from livetranslate.diarize.scoring import (
    Turn,
    _hungarian,
    diarization_error_rate,
    parse_rttm,
    read_rttm,
)

SAMPLE_RTTM = Path(__file__).parents[3] / "tests" / "data" / "pyannote" / "sample.rttm"

REFERENCE = [Turn("alice", 0.0, 10.0), Turn("bob", 10.0, 20.0)]


def test_rttm_speaker_lines_become_turns_with_end_times() -> None:
    text = "SPEAKER call 1 6.690 0.430 <NA> <NA> diane <NA> <NA>\nSPKR-INFO ignored\n"

    assert parse_rttm(text) == [Turn("diane", 6.69, pytest.approx(7.12))]


def test_rttm_keeps_only_the_named_recording() -> None:
    text = "SPEAKER a 1 0 1 <NA> <NA> x <NA> <NA>\nSPEAKER b 1 0 1 <NA> <NA> y <NA> <NA>\n"

    assert [turn.speaker for turn in parse_rttm(text, "b")] == ["y"]


def test_rttm_line_with_too_few_fields_is_an_error_naming_the_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_rttm("SPEAKER a 1 0 1 <NA> <NA> x\nSPEAKER a 1 0 1\n")


def test_sample_call_reference_has_two_speakers() -> None:
    turns = read_rttm(SAMPLE_RTTM)

    assert {turn.speaker for turn in turns} == {"speaker90", "speaker91"}
    assert len(turns) == 10


def test_same_turns_under_other_labels_score_zero() -> None:
    hypothesis = [Turn("S2", 0.0, 10.0), Turn("S1", 10.0, 20.0)]

    rate = diarization_error_rate(REFERENCE, hypothesis, collar_s=0.0)

    assert rate.der == 0.0
    assert rate.mapping == {"S2": "alice", "S1": "bob"}


def test_one_label_for_two_speakers_is_confusion_of_the_smaller_share() -> None:
    hypothesis = [Turn("S1", 0.0, 20.0)]

    rate = diarization_error_rate(REFERENCE, hypothesis, collar_s=0.0)

    assert rate.confusion_s == pytest.approx(10.0)
    assert rate.der == pytest.approx(0.5)


def test_missed_and_false_alarm_speech_are_counted_apart() -> None:
    hypothesis = [Turn("S1", 2.0, 10.0), Turn("S2", 10.0, 23.0)]

    rate = diarization_error_rate(REFERENCE, hypothesis, collar_s=0.0)

    assert rate.missed_s == pytest.approx(2.0)
    assert rate.false_alarm_s == pytest.approx(3.0)
    assert rate.confusion_s == pytest.approx(0.0)
    assert rate.der == pytest.approx(5.0 / 20.0)


def test_overlapped_reference_speech_counts_once_per_speaker() -> None:
    reference = [Turn("alice", 0.0, 10.0), Turn("bob", 5.0, 10.0)]

    rate = diarization_error_rate(reference, [Turn("S1", 0.0, 10.0)], collar_s=0.0)

    assert rate.reference_s == pytest.approx(15.0)
    assert rate.missed_s == pytest.approx(5.0)


def test_collar_forgives_boundary_errors_on_each_side() -> None:
    late = [Turn("S1", 0.2, 10.2), Turn("S2", 10.2, 20.0)]

    assert diarization_error_rate(REFERENCE, late, collar_s=0.0).der > 0.0
    assert diarization_error_rate(REFERENCE, late, collar_s=0.25).der == 0.0


def test_collar_removes_half_a_second_around_each_boundary_from_the_total() -> None:
    rate = diarization_error_rate(REFERENCE, REFERENCE, collar_s=0.25)

    # Boundaries at 0, 10 (shared by both turns) and 20: 0.25 + 0.5 + 0.25 s out.
    assert rate.reference_s == pytest.approx(19.0)


def test_empty_hypothesis_misses_everything() -> None:
    rate = diarization_error_rate(REFERENCE, [], collar_s=0.0)

    assert rate.der == pytest.approx(1.0)
    assert rate.mapping == {}


def test_assignment_matches_brute_force_on_random_matrices() -> None:
    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 4, 5):
        for _ in range(20):
            cost = rng.integers(-50, 50, size=(size, size)).astype(np.float64)
            rows = _hungarian(cost)
            best = min(
                sum(cost[r, c] for r, c in enumerate(perm))
                for perm in itertools.permutations(range(size))
            )
            assert sorted(rows) == list(range(size))
            assert sum(cost[r, c] for r, c in enumerate(rows)) == best
