"""Speaker figures: talk time, turns and overlap from the diarizer's turns."""

from __future__ import annotations

import pytest

from livetranslate.analytics.stage import SessionFigures
from livetranslate.contracts import v1


def _turn(speaker: str, start_s: float, end_s: float) -> v1.SpeakerTurn:
    return v1.SpeakerTurn(
        session_id="s", utterance_id="u00001", speaker=speaker, start_s=start_s, end_s=end_s
    )


def _snapshot(*turns: v1.SpeakerTurn) -> v1.AnalyticsSnapshot:
    figures = SessionFigures("s")
    figures.turns.extend(turns)
    return figures.snapshot(final=True)


def test_talk_time_is_summed_per_speaker() -> None:
    snapshot = _snapshot(_turn("S1", 0, 2), _turn("S2", 2, 5), _turn("S1", 5, 6))
    assert snapshot.speakers["S1"].talk_s == pytest.approx(3.0)
    assert snapshot.speakers["S2"].talk_s == pytest.approx(3.0)


def test_a_turn_continued_by_the_same_speaker_counts_once() -> None:
    snapshot = _snapshot(_turn("S1", 0, 2), _turn("S1", 2, 4), _turn("S2", 4, 5), _turn("S1", 5, 6))
    assert snapshot.speakers["S1"].turns == 2
    assert snapshot.speakers["S2"].turns == 1


def test_overlap_counts_only_time_two_speakers_share() -> None:
    snapshot = _snapshot(_turn("S1", 0, 3), _turn("S2", 2, 4), _turn("S1", 3.5, 5))
    assert snapshot.overlap_s == pytest.approx(1.5)


def test_a_session_without_turns_has_no_speaker_figures() -> None:
    snapshot = _snapshot()
    assert snapshot.speakers == {}
    assert snapshot.overlap_s == 0.0
