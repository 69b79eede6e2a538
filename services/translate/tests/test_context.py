"""ContextHistory: a sentence's context is its speaker's earlier pairs, else the session's."""

from __future__ import annotations

from livetranslate.translate.context import ContextHistory, ContextPair


def _pair(text: str) -> ContextPair:
    return ContextPair(text, f"[pt] {text}")


def test_nothing_remembered_gives_an_empty_context() -> None:
    history = ContextHistory(2)

    assert history.context("pt", None) == ()
    assert history.context("pt", "S1") == ()


def test_a_known_speaker_gets_only_their_own_earlier_pairs() -> None:
    history = ContextHistory(2)
    history.remember("pt", "S1", _pair("We met."))
    history.remember("pt", "S2", _pair("I was late."))
    history.remember("pt", "S1", _pair("It went well."))

    assert history.context("pt", "S1") == (_pair("We met."), _pair("It went well."))
    assert history.context("pt", "S2") == (_pair("I was late."),)
    assert history.context("pt", "S3") == ()


def test_an_unknown_speaker_gets_the_sessions_latest_pairs() -> None:
    history = ContextHistory(2)
    history.remember("pt", "S1", _pair("We met."))
    history.remember("pt", None, _pair("Hm."))
    history.remember("pt", "S2", _pair("I was late."))

    assert history.context("pt", None) == (_pair("Hm."), _pair("I was late."))


def test_a_pair_of_unknown_speaker_is_no_speakers_context() -> None:
    history = ContextHistory(2)
    history.remember("pt", None, _pair("Hm."))

    assert history.context("pt", "S1") == ()


def test_each_speaker_keeps_only_the_last_size_pairs() -> None:
    history = ContextHistory(2)
    for text in ("One.", "Two.", "Three."):
        history.remember("pt", "S1", _pair(text))

    assert history.context("pt", "S1") == (_pair("Two."), _pair("Three."))


def test_targets_are_kept_apart() -> None:
    history = ContextHistory(2)
    history.remember("pt", "S1", _pair("We met."))

    assert history.context("de", "S1") == ()
    assert history.context("de", None) == ()


def test_size_zero_remembers_nothing() -> None:
    history = ContextHistory(0)
    history.remember("pt", "S1", _pair("We met."))

    assert history.context("pt", "S1") == ()
    assert history.context("pt", None) == ()
