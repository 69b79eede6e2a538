"""Language pairs: the key every engine and route is looked up by."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from livetranslate.translate.errors import UnsupportedPairError
from livetranslate.translate.languages import normalize_language

__all__ = ["LanguagePair", "format_pairs", "normalize_pair", "served_pair"]

LanguagePair: TypeAlias = tuple[str, str]
"""``(source, target)``, both normalised language codes."""


def normalize_pair(source: str, target: str) -> LanguagePair:
    return normalize_language(source), normalize_language(target)


def format_pairs(pairs: Iterable[LanguagePair]) -> str:
    """``"en->pt, pt->en"``, sorted, or ``"none"``."""
    return ", ".join(f"{s}->{t}" for s, t in sorted(pairs)) or "none"


def served_pair(
    engine: str, pairs: frozenset[LanguagePair], source: str, target: str
) -> LanguagePair:
    """The normalised pair, when ``pairs`` holds it; else ``UnsupportedPairError``."""
    pair = normalize_pair(source, target)
    if pair not in pairs:
        raise UnsupportedPairError(
            f"{engine} does not translate {pair[0]}->{pair[1]}; it translates {format_pairs(pairs)}"
        )

    return pair
