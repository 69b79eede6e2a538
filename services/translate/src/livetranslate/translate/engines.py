"""Translation engines and the router that picks one for a language pair.

A stage depends on ``TranslationEngine`` only; which engines exist, and through
which language a pair is pivoted, is decided once where the ``Router`` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from livetranslate.translate._bergamot import BergamotEngine
from livetranslate.translate._ctranslate2 import (
    CTranslate2Engine,
    CTranslate2Model,
    CTranslate2Options,
)
from livetranslate.translate._pairs import LanguagePair, format_pairs, normalize_pair
from livetranslate.translate.context import Context, ContextPair, contexts_for
from livetranslate.translate.errors import (
    ModelFolderError,
    TranslationFailed,
    UnsupportedPairError,
)
from livetranslate.translate.languages import normalize_language

__all__ = [
    "BergamotEngine",
    "CTranslate2Engine",
    "CTranslate2Model",
    "CTranslate2Options",
    "Context",
    "ContextPair",
    "LanguagePair",
    "ModelFolderError",
    "PivotEngine",
    "Router",
    "TranslationEngine",
    "TranslationFailed",
    "UnsupportedPairError",
]


class TranslationEngine(Protocol):
    """What a translation stage needs from an engine (a protocol, not a base class)."""

    name: str
    """Short and stable, for logs and metrics: "bergamot", "ctranslate2"."""

    def pairs(self) -> frozenset[LanguagePair]:
        """The ``(source, target)`` pairs of normalised codes this engine serves."""
        ...

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        """One translation per text, in order; a blank text gives "".

        ``contexts`` is empty, or holds one ``Context`` per text: the sentences
        said before it and their translations, which an engine may use or ignore.
        Texts of different sessions share a call, so each carries its own.

        Raises ``UnsupportedPairError`` for a pair not in ``pairs()`` and
        ``TranslationFailed`` when the model fails.
        """
        ...


class PivotEngine:
    """Two engines in a row: source to the pivot language, then pivot to target.

    Errors compound and latency adds up, so a direct model beats a pivot when
    one exists; the ``Router`` only pivots when there is none. Context is not
    passed on: neither leg has the earlier sentences in the pivot language.
    """

    def __init__(
        self,
        first: TranslationEngine,
        second: TranslationEngine,
        pair: LanguagePair,
        pivot: str,
    ) -> None:
        self.name = f"{first.name}+{second.name}"
        self._first, self._second = first, second
        self._pair, self._pivot = pair, pivot

    def pairs(self) -> frozenset[LanguagePair]:
        return frozenset({self._pair})

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        if normalize_pair(source, target) != self._pair:
            raise UnsupportedPairError(
                f"{self.name} does not translate {source}->{target}; "
                f"it translates {format_pairs([self._pair])}"
            )
        middle = self._first.translate(texts, self._pair[0], self._pivot)

        return self._second.translate(middle, self._pivot, self._pair[1])


class Router:
    """Serves a pair with the first engine that has it, else through a pivot.

    Engines are tried in the order given, so put the preferred one first. A
    router is itself a ``TranslationEngine``.
    """

    name = "router"

    def __init__(self, engines: Sequence[TranslationEngine], pivot: str = "en") -> None:
        self._engines = tuple(engines)
        self._pivot = normalize_language(pivot)

    def resolve(self, source: str, target: str) -> TranslationEngine:
        """The engine for this pair; ``UnsupportedPairError`` lists what is available."""
        pair = normalize_pair(source, target)
        engine = self._direct(pair) or self._pivoted(pair)
        if engine is None:
            raise UnsupportedPairError(
                f"no engine translates {pair[0]}->{pair[1]}, directly or through "
                f"{self._pivot}; available: {format_pairs(self.pairs())}"
            )

        return engine

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        engine = self.resolve(source, target)
        given = contexts_for(texts, contexts)
        if any(given):
            outputs = engine.translate(texts, source, target, contexts=given)
        else:
            outputs = engine.translate(texts, source, target)
        if len(outputs) != len(texts):
            raise TranslationFailed(
                f"{engine.name} returned {len(outputs)} translations for {len(texts)} texts"
            )

        return outputs

    def pairs(self) -> frozenset[LanguagePair]:
        """Every pair served, directly or through the pivot language."""
        direct = frozenset(pair for engine in self._engines for pair in engine.pairs())
        into_pivot = {s for s, t in direct if t == self._pivot}
        from_pivot = {t for s, t in direct if s == self._pivot}
        pivoted = {(s, t) for s in into_pivot for t in from_pivot if s != t}

        return direct | pivoted

    def _direct(self, pair: LanguagePair) -> TranslationEngine | None:
        return next((e for e in self._engines if pair in e.pairs()), None)

    def _pivoted(self, pair: LanguagePair) -> TranslationEngine | None:
        source, target = pair
        if self._pivot in pair or source == target:
            return None
        first = self._direct((source, self._pivot))
        second = self._direct((self._pivot, target))
        if first is None or second is None:
            return None

        return PivotEngine(first, second, pair, self._pivot)
