"""Subject names are built and parsed in one place, and refuse unsafe tokens."""

from __future__ import annotations

import pytest

from livetranslate.contracts import subjects


def test_builders_end_with_the_session() -> None:
    assert subjects.audio_ingest("s-1") == "audio.ingest.s-1"
    assert subjects.transcript("final", "s-1") == "transcript.final.s-1"
    assert subjects.translation("pt", "s-1") == "translation.pt.s-1"


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "*", ">", "x" * 65, "ümlaut", "abc\n"])
def test_session_ids_that_would_break_a_subject_are_refused(bad: str) -> None:
    with pytest.raises(subjects.InvalidSubjectError, match="session id"):
        subjects.audio_ingest(bad)


def test_parse_reverses_the_builders() -> None:
    parsed = subjects.parse(subjects.translation("pt", "room-7"))
    assert (parsed.family, parsed.qualifier, parsed.session_id) == ("translation", "pt", "room-7")
    assert subjects.parse("vad.room-7").qualifier is None


def test_parse_refuses_foreign_subjects() -> None:
    with pytest.raises(subjects.InvalidSubjectError):
        subjects.parse("orders.created.42")


def test_dead_letter_subject_without_a_valid_session_uses_a_placeholder() -> None:
    assert subjects.dead_letter("vad", "not valid") == "deadletter.vad._"
