"""Tests for :mod:`livetranslate.transcribe.stability`."""

from __future__ import annotations

import random

import pytest

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


def test_three_hypotheses_must_agree_when_asked() -> None:
    stability = StablePrefix(agreement=3)

    assert feed(stability, "a b c", "a b d")[-1] == ("", "a b d")
    assert stability.update(["a", "x"]) == ("a", "x")


def test_a_hypothesis_that_does_not_count_is_shown_but_settles_nothing() -> None:
    stability = StablePrefix()
    stability.update(["a", "b"], counts=False)

    assert stability.update(["a", "b"], counts=False) == ("", "a b")
    assert stability.update(["a", "b", "c"]) == ("", "a b c")
    assert stability.update(["a", "b", "d"]) == ("a b", "d")


def test_settling_keeps_the_stable_words_and_takes_the_tail_after_them() -> None:
    stability = StablePrefix()
    feed(stability, "the cat sat on", "the cat sat on")

    settlement = stability.settle(["the", "cat", "sat", "upon", "the", "mat"])

    assert settlement.stable == ("the", "cat", "sat", "on")
    assert ["the", "cat", "sat", "upon", "the", "mat"][settlement.tail_start :] == ["the", "mat"]
    assert settlement.counterparts == (0, 1, 2, 3)


def test_settling_finds_the_tail_after_a_word_the_final_put_before_them() -> None:
    stability = StablePrefix()
    feed(stability, "mister john dashwood", "mister john dashwood had")
    words = ["And", "Mr", "John", "Dashwood", "had", "then", "leisure"]

    settlement = stability.settle(words)

    assert words[settlement.tail_start :] == ["had", "then", "leisure"]
    assert stability.contradicted_words == 1  # "mister" became "Mr"


def test_settling_an_empty_final_contradicts_every_stable_word() -> None:
    stability = StablePrefix()
    feed(stability, "a b c", "a b c")

    settlement = stability.settle([])

    assert settlement.counterparts == (None, None, None)
    assert stability.contradicted_words == stability.stable_words == 3


def test_stable_words_a_later_hypothesis_replaces_are_counted_once() -> None:
    stability = StablePrefix()
    feed(stability, "a b c", "a b c", "a x c", "a y c")

    assert stability.stable_text == "a b c"
    assert stability.contradicted_words == 1


def test_agreement_below_one_hypothesis_is_refused() -> None:
    with pytest.raises(ValueError, match="agreement"):
        StablePrefix(agreement=0)


def test_the_last_words_of_a_hypothesis_are_held_back_from_the_agreement() -> None:
    # Two partials cut inside "amiable" both guessed "am you".
    held = feed(StablePrefix(holdback=1), "made am you", "made am you bull him")
    plain = feed(StablePrefix(), "made am you", "made am you bull him")

    assert held[-1] == ("made am", "you bull him")
    assert plain[-1] == ("made am you", "bull him")


def test_a_hypothesis_no_longer_than_the_holdback_settles_nothing() -> None:
    results = feed(StablePrefix(holdback=2), "made am", "made am")

    assert results[-1] == ("", "made am")


def test_a_negative_holdback_is_refused() -> None:
    with pytest.raises(ValueError, match="holdback"):
        StablePrefix(holdback=-1)
