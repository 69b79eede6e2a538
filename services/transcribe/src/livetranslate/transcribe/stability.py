"""Which words of a growing partial transcript can be shown as settled.

Each partial of an utterance is decoded again from its start, so its last
words change as more audio arrives. ``StablePrefix`` follows the local
agreement rule: a word is stable once ``agreement`` hypotheses in a row (two
by default) agree on it and on every word before it. Stable words are never
taken back, so a caption can print them for good and redraw only the tail.
A hypothesis may be shown without taking part in the agreement: Whisper's
guesses on the first second or two of an utterance often lack a word that
more context brings ("And", a repeated "Hello"), and two such guesses agree.
The last words of a hypothesis never count either (``holdback``): the audio
of a partial usually ends inside a word, and Whisper's guesses at it agree
too. On a LibriVox sentence cut at 2.0 s and at 2.5 s, inside "amiable",
tiny.en wrote "made am you" both times; from the whole sentence it wrote
"made amiable himself".

The final keeps the stable words too (``settle``): the recogniser's last
hypothesis supplies only what follows them. How often a later hypothesis
disagreed with words already shown as stable is counted, so that the cost
of holding them can be measured.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from livetranslate.transcribe.guards import normalize_word

__all__ = ["Settlement", "StablePrefix"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a final hypothesis continues the stable prefix.

    The final's words are the stable words, then ``hypothesis[tail_start:]``.
    """

    stable: tuple[str, ...]
    counterparts: tuple[int | None, ...]
    """Per stable word, the hypothesis word aligned with it (None: none was)."""
    tail_start: int


class StablePrefix:
    """The settled prefix of the successive hypotheses of one utterance."""

    def __init__(self, agreement: int = 2, holdback: int = 0) -> None:
        if agreement < 1:
            raise ValueError(f"agreement must be at least 1 hypothesis; got {agreement}")
        if holdback < 0:
            raise ValueError(f"holdback must be 0 words or more; got {holdback}")
        self.agreement = agreement
        self.holdback = holdback
        self._stable: list[str] = []
        self._previous: list[list[str]] = []
        self._contradicted: set[int] = set()

    @property
    def stable_words(self) -> int:
        """How many words are stable."""
        return len(self._stable)

    @property
    def contradicted_words(self) -> int:
        """Stable words some later hypothesis replaced or left out, each counted once."""
        return len(self._contradicted)

    @property
    def stable_text(self) -> str:
        """The words settled so far, joined by spaces."""
        return " ".join(self._stable)

    def update(self, words: Sequence[str], *, counts: bool = True) -> tuple[str, str]:
        """Take the next hypothesis; return (stable text, unstable tail).

        The stable part grows to the longest common prefix of this hypothesis
        and the ``agreement - 1`` counted ones before it (compared without case
        or punctuation), each without its last ``holdback`` words, spelt as this
        hypothesis spells it, and never shrinks.
        The tail is this hypothesis's words after the stable count, even where
        this hypothesis disagrees with the stable words. A hypothesis that
        does not ``count`` is only split into stable words and tail.
        """
        hypothesis = list(words)
        if hypothesis:
            self._note_contradictions(_align(self._stable, hypothesis))
        if counts:
            self._agree(hypothesis[: max(len(hypothesis) - self.holdback, 0)])

        return self.stable_text, " ".join(hypothesis[len(self._stable) :])

    def settle(self, words: Sequence[str]) -> Settlement:
        """Fit the final hypothesis ``words`` after the stable prefix.

        The words are aligned with the stable ones (without case or
        punctuation); what follows the last stable word's place is the tail.
        Stable words the hypothesis replaced or left out are counted as
        contradicted, and kept.
        """
        opcodes = _align(self._stable, words)
        self._note_contradictions(opcodes)
        counterparts: list[int | None] = [None] * len(self._stable)
        tail_start = 0
        for tag, i1, i2, j1, j2 in opcodes:
            if i1 == len(self._stable):
                break
            # Words that replace the last stable ones beyond one for one are new speech.
            tail_start = j2 if i2 < len(self._stable) else min(j2, j1 + (i2 - i1))
            if tag in ("equal", "replace"):
                for offset in range(min(i2 - i1, j2 - j1)):
                    counterparts[i1 + offset] = j1 + offset

        return Settlement(tuple(self._stable), tuple(counterparts), tail_start)

    def _agree(self, hypothesis: list[str]) -> None:
        earlier = self._previous[-(self.agreement - 1) :] if self.agreement > 1 else []
        if len(earlier) == self.agreement - 1:
            agreed = min(
                (_common_prefix_words(other, hypothesis) for other in earlier),
                default=len(hypothesis),
            )
            if agreed > len(self._stable):
                self._stable.extend(hypothesis[len(self._stable) : agreed])
        self._previous = [*earlier, hypothesis]

    def reset(self) -> None:
        """Forget the utterance: the next hypothesis starts from nothing stable."""
        self._stable.clear()
        self._previous.clear()
        self._contradicted.clear()

    def _note_contradictions(self, opcodes: Sequence[Opcode]) -> None:
        for tag, i1, i2, _j1, _j2 in opcodes:
            if tag in ("replace", "delete"):
                self._contradicted.update(range(i1, i2))


Opcode = tuple[str, int, int, int, int]
"""One step of difflib's edit script: (tag, i1, i2, j1, j2)."""


def _align(stable: Sequence[str], hypothesis: Sequence[str]) -> Sequence[Opcode]:
    """difflib's edit script from the stable words to the hypothesis, compared normalised."""
    matcher = difflib.SequenceMatcher(
        None,
        [normalize_word(word) for word in stable],
        [normalize_word(word) for word in hypothesis],
        autojunk=False,
    )

    return matcher.get_opcodes()


def _common_prefix_words(first: Sequence[str], second: Sequence[str]) -> int:
    count = 0
    for one, other in zip(first, second, strict=False):
        if normalize_word(one) != normalize_word(other):
            break
        count += 1

    return count
