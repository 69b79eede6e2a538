"""Glossaries: source terms that must come out as a given translation.

A session's glossary maps, per target language, a source term to its required
translation ("pipeline" -> "pipeline", so that en->pt does not write
"gasoduto"). It is enforced with placeholders: each term in the source is
replaced by a short code such as ``ZX0`` that translation models copy
unchanged, and the code in the output is replaced by the required translation.
Measured with the Bergamot en<->pt models, codes of capital letters and digits
(``ZX0``, ``XQ1``, ``TERM0``) came through every test sentence, and bracketed
ones (``[0]`` survived; ``{0}``, ``<0>``, ``⟦0⟧``, ``#0``) mostly lost their
brackets. OPUS-MT, NLLB and M2M100 tokenise such codes into ordinary
SentencePiece pieces and copy them as they copy names and part numbers.

Every output is checked afterwards: ``Protected.missing`` names each term found
in the source whose translation is not in the output, so that the stage can
count and log it. A placeholder the model dropped is reported by
``Protected.restore``; the caller then translates the original text instead,
which loses the guarantee for that text but not its words.

Case: a term written all in lower case matches any case ("pipeline" matches
"Pipeline" at the start of a sentence); a term with a capital letter matches
only as written ("Apple" is not "apple"). The translation keeps the form given,
except that a translation written all in lower case is capitalised where the
source occurrence was capitalised mid-sentence or where it starts an output
sentence, and upper-cased where the source occurrence was all capitals.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["Glossary", "Protected", "Restored"]

_PREFIXES: Final = ("ZX", "QZX", "XQZ", "ZQXJ")
"""Placeholder codes are a prefix and a number; the first prefix that does not
already occur in the text is used."""

_SENTENCE_START: Final = re.compile(r"(?:^|[.!?…。！？]\s*)$")  # noqa: RUF001


def _unspaced(char: str) -> bool:
    """Scripts written without spaces between words: a term there has no word edges."""
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # kana
        or 0x3400 <= code <= 0x9FFF  # CJK ideographs
        or 0xF900 <= code <= 0xFAFF
        or 0x0E00 <= code <= 0x0EFF  # Thai, Lao
        or 0x1000 <= code <= 0x109F  # Myanmar
        or 0x1780 <= code <= 0x17FF  # Khmer
    )


@dataclass(frozen=True, slots=True)
class _Term:
    source: str
    translation: str
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, source: str, translation: str) -> _Term:
        body = re.escape(source)
        if not _unspaced(source[0]):
            body = r"(?<!\w)" + body
        if not _unspaced(source[-1]):
            body += r"(?!\w)"
        flags = re.IGNORECASE if source == source.lower() else 0

        return cls(source, translation, re.compile(body, flags))

    def rendered(self, found: str, at_sentence_start: bool) -> str:
        """The translation in the case the source occurrence ``found`` asks for."""
        if self.source != self.source.lower() or self.translation != self.translation.lower():
            return self.translation
        if len(found) > 1 and found.isupper():
            return self.translation.upper()
        if found[:1].isupper() and not at_sentence_start:
            return _capitalised(self.translation)

        return self.translation


@dataclass(frozen=True, slots=True)
class _Slot:
    placeholder: str
    term: str
    translation: str


@dataclass(frozen=True, slots=True)
class Restored:
    """An output with the required translations in place of the placeholders."""

    text: str
    lost: tuple[str, ...]
    """Terms whose placeholder the model dropped or garbled."""


@dataclass(frozen=True, slots=True)
class Protected:
    """A source text with its glossary terms replaced by placeholders."""

    original: str
    text: str
    slots: tuple[_Slot, ...]
    prefix: str

    def restore(self, output: str) -> Restored:
        """``output`` with each placeholder replaced by its translation.

        A placeholder the model wrote twice is kept once; a number the text
        never had is left as it is.
        """
        if not self.slots:
            return Restored(output, ())
        seen: set[int] = set()

        def put_back(match: re.Match[str]) -> str:
            index = int(match["index"])
            if index >= len(self.slots):
                return match.group()
            if index in seen:
                return ""
            seen.add(index)
            translation = self.slots[index].translation
            # "iPhone" keeps its form anywhere; an all-lower-case one starts a sentence
            # with a capital like any other word.
            lower = translation == translation.lower()
            if lower and _SENTENCE_START.search(output[: match.start()]):
                return _capitalised(translation)
            return translation

        pattern = re.compile(rf"{self.prefix}(?P<index>\d+)")
        text = re.sub(r"[ \t]{2,}", " ", pattern.sub(put_back, output)).strip()
        lost = tuple(slot.term for i, slot in enumerate(self.slots) if i not in seen)

        return Restored(text, lost)

    def missing(self, output: str) -> tuple[str, ...]:
        """Terms of this text whose required translation is not in ``output``."""
        missing = (slot.term for slot in self.slots if not _appears(slot.translation, output))

        return tuple(dict.fromkeys(missing))


class Glossary:
    """The required translations of one session into one target language."""

    def __init__(self, terms: Mapping[str, str] | None = None) -> None:
        cleaned = {s.strip(): t.strip() for s, t in (terms or {}).items() if s.strip()}
        # Longest first, so that "release pipeline" is taken before "pipeline".
        ordered = sorted(cleaned.items(), key=lambda item: -len(item[0]))
        self._terms = tuple(_Term.of(source, translation) for source, translation in ordered)

    def __bool__(self) -> bool:
        return bool(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def protect(self, text: str) -> Protected:
        """``text`` with every glossary term in it replaced by a placeholder."""
        prefix = next((p for p in _PREFIXES if p not in text), _PREFIXES[-1] + "Q")
        slots: list[_Slot] = []
        protected = text
        for term in self._terms:
            protected = term.pattern.sub(functools.partial(_slot, term, slots, prefix), protected)

        return Protected(text, protected, tuple(slots), prefix)

    def terms(self) -> Iterator[tuple[str, str]]:
        for term in self._terms:
            yield term.source, term.translation


def _slot(term: _Term, slots: list[_Slot], prefix: str, match: re.Match[str]) -> str:
    """Record one occurrence of ``term`` in ``slots``; its placeholder replaces it."""
    at_start = _SENTENCE_START.search(match.string[: match.start()]) is not None
    slots.append(
        _Slot(f"{prefix}{len(slots)}", term.source, term.rendered(match.group(), at_start))
    )

    return slots[-1].placeholder


def _appears(translation: str, output: str) -> bool:
    """Whether ``output`` holds ``translation``: as written when it has capitals
    (or capitalised at a sentence start), in any case when it is all lower case."""
    if translation != translation.lower():
        return translation in output or _capitalised(translation) in output

    return translation in output.lower()


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
