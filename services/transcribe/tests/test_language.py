"""Tests for :mod:`livetranslate.transcribe.language`."""

from __future__ import annotations

from livetranslate.transcribe.language import LanguageOptions, SessionLanguage

LONG_S = 4.0
SHORT_S = 0.8


def test_a_fixed_language_is_never_detected_nor_changed() -> None:
    language = SessionLanguage("pt")

    assert not language.needs_detection(LONG_S)
    assert language.observe("en", 0.99, LONG_S) == "pt"
    assert language.current == "pt"


def test_the_first_detection_sets_the_language() -> None:
    language = SessionLanguage()

    assert language.needs_detection(SHORT_S)
    assert language.observe("es", 0.6, SHORT_S) == "es"
    assert language.current == "es"


def test_short_utterances_keep_the_language_without_a_detection() -> None:
    language = SessionLanguage()
    language.observe("en", 0.9, LONG_S)

    assert not language.needs_detection(SHORT_S)
    assert language.needs_detection(LONG_S)


def test_one_confident_detection_of_another_language_does_not_switch() -> None:
    language = SessionLanguage()
    language.observe("en", 0.9, LONG_S)

    assert language.observe("de", 0.95, LONG_S) == "en"
    assert language.observe("en", 0.9, LONG_S) == "en"
    assert language.observe("de", 0.95, LONG_S) == "en"


def test_two_confident_detections_in_a_row_switch() -> None:
    language = SessionLanguage()
    language.observe("en", 0.9, LONG_S)

    assert language.observe("pt", 0.9, LONG_S) == "en"
    assert language.observe("pt", 0.9, LONG_S) == "pt"
    assert language.current == "pt"


def test_unsure_or_short_detections_do_not_count_towards_a_switch() -> None:
    language = SessionLanguage()
    language.observe("en", 0.9, LONG_S)

    for _ in range(5):
        assert language.observe("fr", 0.5, LONG_S) == "en"
        assert language.observe("fr", 0.99, SHORT_S) == "en"


def test_switch_after_one_follows_every_confident_detection() -> None:
    language = SessionLanguage(options=LanguageOptions(switch_after=1))
    language.observe("en", 0.9, LONG_S)

    assert language.observe("it", 0.9, LONG_S) == "it"
