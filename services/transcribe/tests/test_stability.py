"""Tests for :mod:`livetranslate.transcribe.stability`."""

from __future__ import annotations

import random

from livetranslate.transcribe.stability import StablePrefix


def feed(stability: StablePrefix, *hypotheses: str) -> list[tuple[str, str]]:
    return [stability.update(hypothesis.split()) for hypothesis in hypotheses]


def test_the_first_hypothesis_is_all_tail() -> None:
    assert StablePrefix().update(["hello", "world"]) == ("", "hello world")


def test_words_two_hypotheses_in_a_row_agree_on_become_stable() -> None:
    results = feed(StablePrefix(), "the cat", "the cat sat", "the cat sat on")

    assert results == [("", "the cat"), ("the cat", "sat"), ("the cat sat", "on")]


def test_agreement_stops_at_the_first_difference() -> None:
    results = feed(StablePrefix(), "a b c d", "a b x d")

    assert results[-1] == ("a b", "x d")


def test_agreement_ignores_case_and_punctuation() -> None:
    results = feed(StablePrefix(), "Hello, world", "hello world. How")

    assert results[-1] == ("hello world.", "How")


def test_the_stable_prefix_is_kept_when_a_later_hypothesis_disagrees() -> None:
    stability = StablePrefix()
    feed(stability, "a b c", "a b c d")

    assert stability.update(["x", "y"]) == ("a b c", "")
    assert stability.update(["x", "y", "z", "w"]) == ("a b c", "w")


def test_disagreeing_hypotheses_that_agree_with_each_other_extend_it() -> None:
    stability = StablePrefix()
    feed(stability, "a b", "a b")

    assert feed(stability, "a B c d", "a B c d e")[-1] == ("a b c d", "e")


def test_the_stable_prefix_never_shrinks() -> None:
    rng = random.Random(5)
    vocabulary = ["the", "cat", "sat", "on", "a", "mat", "The,", "cat."]
    stability = StablePrefix()
    previous: list[str] = []
    for _ in range(500):
        hypothesis = [rng.choice(vocabulary) for _ in range(rng.randint(0, 8))]
        stable, tail = stability.update(hypothesis)
        words = stable.split()

        assert words[: len(previous)] == previous
        assert tail.split() == hypothesis[len(words) :]
        previous = words


def test_a_final_may_differ_only_in_the_tail() -> None:
    stability = StablePrefix()
    feed(stability, "he was", "he was not an", "he was not an old", "he was not an ill")
    stable_before = stability.stable_text

    stable, tail = stability.update(["he", "was", "not", "an", "ill-disposed", "young", "man."])

    assert stable == stable_before == "he was not an"
    assert f"{stable} {tail}" == "he was not an ill-disposed young man."


def test_reset_forgets_the_utterance() -> None:
    stability = StablePrefix()
    feed(stability, "a b", "a b")
    stability.reset()

    assert stability.stable_text == ""
    assert stability.update(["a", "b"]) == ("", "a b")


def test_an_empty_hypothesis_keeps_what_is_stable() -> None:
    stability = StablePrefix()
    feed(stability, "a b", "a b")

    assert stability.update([]) == ("a b", "")
