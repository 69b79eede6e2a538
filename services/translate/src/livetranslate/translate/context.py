"""What was said just before: earlier sentences of a session and their translations.

A sentence-level model translates "It is broken." without knowing what "it" is;
given the sentence before it, a model that can read context chooses gender,
number and terms consistently. Engines that cannot use context ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Context", "ContextPair", "contexts_for"]


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
