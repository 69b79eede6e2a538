"""What was said just before: earlier sentences of a session and their translations.

A sentence-level model translates "It is broken." without knowing what "it" is;
given the sentence before it, a model that can read context chooses gender,
number and terms consistently. Engines that cannot use context ignore it.

In a conversation the sentence before is often another person's, whose "it"
is not this speaker's; so when the speaker of a sentence is known, its context
is that speaker's earlier sentences, and the session's only when it is not.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Context", "ContextHistory", "ContextPair", "contexts_for"]

_SPEAKERS_KEPT = 64
"""Speakers (times target languages) whose pairs one session keeps; the least recent go."""


@dataclass(frozen=True, slots=True)
class ContextPair:
    """One earlier source text and the translation that was published for it."""

    source: str
    target: str


Context: TypeAlias = Sequence[ContextPair]
"""Earlier pairs of one text, oldest first; empty when there are none."""


def contexts_for(texts: Sequence[str], contexts: Sequence[Context]) -> list[Context]:
    """One context per text: ``contexts`` as given, or none at all when it is empty.

    Raises ``ValueError`` when ``contexts`` is neither empty nor one per text.
    """
    if not contexts:
        return [() for _ in texts]
    if len(contexts) != len(texts):
        raise ValueError(f"expected one context per text ({len(texts)}); got {len(contexts)}")

    return list(contexts)


class ContextHistory:
    """The last ``size`` pairs of one session per target language, and of each speaker.

    Pairs whose speaker is unknown count for the session only: they cannot be
    told to belong to any one speaker.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._pairs: OrderedDict[tuple[str, str | None], deque[ContextPair]] = OrderedDict()

    def remember(self, target: str, speaker: str | None, pair: ContextPair) -> None:
        if self._size == 0:
            return
        self._kept(target, None).append(pair)
        if speaker is not None:
            self._kept(target, speaker).append(pair)

    def context(self, target: str, speaker: str | None) -> Context:
        """The speaker's earlier pairs into ``target``; the session's when ``speaker`` is None."""
        return tuple(self._pairs.get((target, speaker), ()))

    def _kept(self, target: str, speaker: str | None) -> deque[ContextPair]:
        key = (target, speaker)
        kept = self._pairs.pop(key, None)
        if kept is None:
            kept = deque(maxlen=self._size)
        self._pairs[key] = kept
        while len(self._pairs) > _SPEAKERS_KEPT:
            self._pairs.popitem(last=False)

        return kept
