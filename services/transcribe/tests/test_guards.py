"""Tests for :mod:`livetranslate.transcribe.guards`, on synthetic text and signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from livetranslate.transcribe.guards import (
    collapse_loops,
    cut_loops,
    ends_doubled,
    has_repeated_span,
    normalize_word,
    rms_dbfs,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the the the the cat sat", "the cat sat"),
        ("so a b a b a b then", "so a b then"),
        ("I said go on go on go on go on", "I said go on"),
        ("one two three one two three one two three end", "one two three end"),
        ("w x y z w x y z w x y z", "w x y z"),
    ],
)
def test_an_ngram_said_three_times_in_a_row_is_cut_to_one(text: str, expected: str) -> None:
    assert cut_loops(text) == expected


def test_two_copies_of_a_short_ngram_are_kept() -> None:
    assert cut_loops("no no way, I said no no") == "no no way, I said no no"


def test_loops_are_compared_without_case_or_punctuation() -> None:
    assert cut_loops("Thank you. thank you, Thank you! Bye.") == "Thank you. Bye."


def test_ngrams_longer_than_the_limit_are_not_loops() -> None:
    text = "a b c d e a b c d e a b c d e"

    assert cut_loops(text) == text
    assert cut_loops(text, max_ngram_words=5) == "a b c d e"


def test_a_partial_copy_ending_the_text_goes_with_the_loop() -> None:
    text = "I'm your friend, I'm your friend, I'm your friend, I'm y"

    assert cut_loops(text) == "I'm your friend,"


def test_a_partial_copy_followed_by_new_words_is_kept() -> None:
    text = "I'm your friend, I'm your friend, I'm your friend, I'm glad"

    assert cut_loops(text) == "I'm your friend, I'm glad"


def test_a_doubled_long_run_is_cut_only_when_asked() -> None:
    text = "I'm going to go to the next one. I'm going to go to the next one."

    assert cut_loops(text) == text
    assert cut_loops(text, doubled_min_words=5) == "I'm going to go to the next one."


def test_a_doubled_run_shorter_than_the_minimum_is_kept() -> None:
    text = "we need to, we need to decide"

    assert cut_loops(text, doubled_min_words=5) == text


def test_collapse_loops_returns_the_indices_kept_in_order() -> None:
    assert collapse_loops(["x", "a", "a", "a", "y"]) == [0, 1, 4]


def test_no_words_give_no_indices() -> None:
    assert collapse_loops([]) == []
    assert cut_loops("") == ""


def test_a_repeated_run_is_found_anywhere_but_not_overlapping() -> None:
    words = "He might even have been made amiable himself. He might even have been made"

    assert has_repeated_span(words.split(), span_words=4)
    assert not has_repeated_span(["a", "a", "a", "a", "a"], span_words=4)
    assert not has_repeated_span(
        ["to", "be", "rather", "cold", "and", "rather", "selfish"], span_words=3
    )


def test_a_doubled_ending_is_found() -> None:
    assert ends_doubled(["Thank", "You", "Thank", "You"])
    assert ends_doubled(["so", "it", "was", "late", "it", "was", "late"])
    assert not ends_doubled(["it", "was", "late,", "so", "late"])
    assert not ends_doubled(["yes"])


def test_normalize_word_drops_case_and_punctuation_but_keeps_apostrophes() -> None:
    assert normalize_word("Friend,") == "friend"
    assert normalize_word("don't.") == "don't"
    assert normalize_word("...") == ""


def test_rms_dbfs_of_a_full_scale_sine_is_minus_3_db() -> None:
    sine = np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000).astype(np.float32)

    assert rms_dbfs(sine) == pytest.approx(-3.01, abs=0.01)


def test_rms_dbfs_of_nothing_is_minus_infinity() -> None:
    assert rms_dbfs(np.zeros(16_000, np.float32)) == -math.inf
    assert rms_dbfs(np.zeros(0, np.float32)) == -math.inf
