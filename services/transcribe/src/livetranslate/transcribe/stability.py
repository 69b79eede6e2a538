"""Which words of a growing partial transcript can be shown as settled.

Each partial of an utterance is decoded again from its start, so its last
words change as more audio arrives. ``StablePrefix`` follows the local
agreement rule: a word is stable once two hypotheses in a row agree on it and
on every word before it. Stable words are never taken back, so a caption can
print them for good and redraw only the tail.
"""

from __future__ import annotations

from collections.abc import Sequence

from livetranslate.transcribe.guards import normalize_word

__all__ = ["StablePrefix"]


class StablePrefix:
    """The settled prefix of the successive hypotheses of one utterance."""

    def __init__(self) -> None:
        self._stable: list[str] = []
        self._previous: list[str] = []

    @property
    def stable_text(self) -> str:
        """The words settled so far, joined by spaces."""
        return " ".join(self._stable)

    def update(self, words: Sequence[str]) -> tuple[str, str]:
        """Take the next hypothesis; return (stable text, unstable tail).

        The stable part grows to the longest common prefix of this hypothesis
        and the one before (compared without case or punctuation), spelt as
        this hypothesis spells it, and never shrinks. The tail is this
        hypothesis's words after the stable count, even where this hypothesis
        disagrees with the stable words.
        """
        hypothesis = list(words)
        agreed = _common_prefix_words(self._previous, hypothesis)
        if agreed > len(self._stable):
            self._stable.extend(hypothesis[len(self._stable) : agreed])
        self._previous = hypothesis

        return self.stable_text, " ".join(hypothesis[len(self._stable) :])

    def reset(self) -> None:
        """Forget the utterance: the next hypothesis starts from nothing stable."""
        self._stable.clear()
        self._previous = []


def _common_prefix_words(first: Sequence[str], second: Sequence[str]) -> int:
    count = 0
    for one, other in zip(first, second, strict=False):
        if normalize_word(one) != normalize_word(other):
            break
        count += 1

    return count
