"""Cutting text into sentence-sized pieces and joining their translations back.

Sentence-level models drop or garble what lies beyond a few hundred characters:
Bergamot en->pt turned 1,000 characters of meeting prose into 405 characters of
Portuguese and 5,000 into 299, with no error. Translating sentence by sentence
keeps every sentence, and a sentence longer than the limit is cut at a clause
mark or a space. Line breaks survive; other whitespace between sentences becomes
one space, or nothing for targets written without spaces.

Abbreviations such as "Mr." end a sentence here; the model then sees two short
pieces, which costs a little fluency and loses no words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from livetranslate.translate.errors import TranslationFailed

__all__ = ["Split", "ends_sentence", "joiner", "split_text", "split_texts", "translate_in_pieces"]

# Western stops need whitespace after them so that "3.5" and "e.g.x" stay whole;
# CJK stops end a sentence on their own. Closing quotes stay with their sentence.
# The full-width CJK punctuation below is meant, hence the RUF001 exemptions.
_BOUNDARY: Final = re.compile(
    r"[.!?…]+[\"'”’»)\]]*\s+|[。！？]+[」』”’）)]*\s*|\s*\n\s*"  # noqa: RUF001
)
_SENTENCE_END: Final = re.compile(r"[.!?…。！？．‼⁇؟।]+[\"'”’»)\]」』）]*\s*$")  # noqa: RUF001
_CLAUSE: Final = re.compile(r"[,;:]\s+|[，；：、]\s*")  # noqa: RUF001
_SPACE: Final = re.compile(r"\s+")

_UNSPACED: Final = frozenset({"ja", "km", "lo", "my", "th", "zh"})
"""Languages written without spaces between sentences."""


@dataclass(frozen=True, slots=True)
class Split:
    """A text cut into pieces; ``separators[i]`` is the whitespace after piece i."""

    pieces: tuple[str, ...]
    separators: tuple[str, ...]

    def join(self, translations: Sequence[str], target: str) -> str:
        """The translated pieces, in order, with the original line breaks."""
        out = [translations[0]] if translations else []
        for separator, text in zip(self.separators, translations[1:], strict=True):
            out.extend((_rejoin(separator, target), text))

        return "".join(out)


def split_text(text: str, max_chars: int) -> Split:
    """Sentences of ``text``, none longer than ``max_chars``; no piece is blank."""
    pieces: list[str] = []
    separators: list[str] = []
    for sentence, separator in _sentences(text.strip()):
        for piece, inner in _cut(sentence, max_chars):
            pieces.append(piece)
            separators.append(inner)
        separators[-1] = separator

    return Split(tuple(pieces), tuple(separators[:-1]))


def split_texts(texts: Sequence[str], max_chars: int) -> list[Split]:
    """``split_text`` of each text, in order."""
    return [split_text(text, max_chars) for text in texts]


def translate_in_pieces(
    texts: Sequence[str],
    max_chars: int,
    target: str,
    translate: Callable[[list[str]], list[str]],
    splits: Sequence[Split] | None = None,
) -> list[str]:
    """Translate ``texts`` sentence by sentence in one call of ``translate``.

    ``translate`` gets every piece of every text as one batch, and is not called
    at all when every text is blank; a blank text translates to "". A caller that
    needs to know which piece is which (to give the first piece of each text its
    context, say) splits first with ``split_texts`` and passes ``splits``.
    """
    splits = split_texts(texts, max_chars) if splits is None else splits
    pieces = [piece for split in splits for piece in split.pieces]
    outputs = translate(pieces) if pieces else []
    if len(outputs) != len(pieces):
        raise TranslationFailed(
            f"the model returned {len(outputs)} translations for {len(pieces)} sentences"
        )
    translated = iter(outputs)

    return [split.join([next(translated) for _ in split.pieces], target) for split in splits]


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends with a sentence stop: ., ?, !, … or a CJK stop such as 。.

    Closing quotes and brackets after the stop are allowed. An abbreviation at
    the very end ("see Mr.") counts as a stop: it only costs an earlier flush.
    """
    return _SENTENCE_END.search(text) is not None


def joiner(language: str) -> str:
    """What goes between two sentences of ``language``: a space, or nothing."""
    return "" if language in _UNSPACED else " "


def _sentences(text: str) -> Iterator[tuple[str, str]]:
    """``(sentence, whitespace after it)`` for every non-blank sentence."""
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        end = boundary.start() + len(boundary.group().rstrip())
        if text[start:end].strip():
            yield text[start:end].strip(), text[end : boundary.end()]
        start = boundary.end()
    if text[start:].strip():
        yield text[start:].strip(), ""


def _cut(sentence: str, max_chars: int) -> Iterator[tuple[str, str]]:
    """Pieces of at most ``max_chars``, each with the separator that follows it."""
    rest = sentence
    while len(rest) > max_chars:
        at = _cut_point(rest, max_chars)
        piece, rest = rest[:at].rstrip(), rest[at:].lstrip()
        yield piece, " "
    yield rest, ""


def _cut_point(text: str, max_chars: int) -> int:
    """Where to cut: the last clause mark, else the last space, else anywhere."""
    # Cutting earlier than a third of the limit would leave fragments the model
    # translates badly; past that, a clause boundary beats a fuller piece.
    window = text[: max_chars + 1]
    lowest = max_chars // 3
    for pattern in (_CLAUSE, _SPACE):
        ends = [m.end() for m in pattern.finditer(window) if m.end() > lowest]
        if ends:
            return min(ends[-1], max_chars)

    return max_chars


def _rejoin(separator: str, target: str) -> str:
    if "\n" in separator:
        return separator

    return joiner(target)
