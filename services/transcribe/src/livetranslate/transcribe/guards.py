"""Checks that keep text the recogniser invented out of a transcript.

Whisper writes fluent text for noise, tones and silence, and its decoder
can fall into a loop that repeats a few words until it runs out of tokens.
None of these checks looks for particular phrases: they measure the audio
(how loud it is) or the shape of the text (does it repeat itself).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "collapse_loops",
    "cut_loops",
    "ends_doubled",
    "has_repeated_span",
    "normalize_word",
    "rms_dbfs",
]

_NOT_WORD = re.compile(r"[^\w']+")


def normalize_word(word: str) -> str:
    """Lower case without punctuation, so "Friend," and "friend" compare equal."""
    return _NOT_WORD.sub("", word.lower()).strip("'")


def rms_dbfs(audio: npt.NDArray[np.float32]) -> float:
    """Root-mean-square level in dB relative to full scale; -inf for no signal."""
    if audio.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))

    return 20.0 * math.log10(rms) if rms > 0.0 else -math.inf


def collapse_loops(
    words: Sequence[str],
    *,
    max_ngram_words: int = 4,
    min_repeats: int = 3,
    doubled_min_words: int = 0,
) -> list[int]:
    """Indices of the words to keep once every loop is cut down to one copy.

    A loop is an n-gram of 1 to ``max_ngram_words`` words repeated at least
    ``min_repeats`` times in a row (compared by ``normalize_word``), or, when
    ``doubled_min_words`` is set, a run at least that long said twice in a row:
    Whisper repeats whole sentences it invented for noise. A partial copy that
    ends the text, where the decoder was stopped mid-repeat, goes with it. The
    shortest repeating n-gram wins, so "no no no no" keeps "no".
    """
    keys = [normalize_word(word) for word in words]
    lengths = _loop_lengths(len(keys), max_ngram_words, min_repeats, doubled_min_words)
    keep: list[int] = []
    start = 0
    while start < len(keys):
        ngram_words, repeats = _loop_at(keys, start, lengths)
        if repeats == 0:
            keep.append(start)
            start += 1
            continue
        keep.extend(range(start, start + ngram_words))
        start = _skip_partial_copy(keys, start, ngram_words, start + ngram_words * repeats)

    return keep


def cut_loops(
    text: str, *, max_ngram_words: int = 4, min_repeats: int = 3, doubled_min_words: int = 0
) -> str:
    """``text`` with every loop cut down to one copy (see ``collapse_loops``)."""
    words = text.split()
    keep = collapse_loops(
        words,
        max_ngram_words=max_ngram_words,
        min_repeats=min_repeats,
        doubled_min_words=doubled_min_words,
    )

    return " ".join(words[index] for index in keep)


def has_repeated_span(words: Sequence[str], *, span_words: int) -> bool:
    """Whether some run of ``span_words`` words occurs twice without overlapping.

    Whole-sentence repeats ("It was late. It was late.") are longer than the
    loops ``collapse_loops`` cuts; read speech rarely repeats a long run
    exactly, so finding one is a reason to distrust a decode, not to cut it.
    """
    keys = [normalize_word(word) for word in words]
    first_seen: dict[tuple[str, ...], int] = {}
    for start in range(len(keys) - span_words + 1):
        span = tuple(keys[start : start + span_words])
        seen_at = first_seen.setdefault(span, start)
        if start - seen_at >= span_words:
            return True

    return False


def ends_doubled(words: Sequence[str], *, min_words: int = 2) -> bool:
    """Whether the text ends with a run of ``min_words`` or more words said twice.

    "Thank you. Thank you." is a decoder that ran past the speech as often as
    it is a speaker; like ``has_repeated_span``, a reason for doubt.
    """
    keys = [normalize_word(word) for word in words]
    longest = len(keys) // 2

    return any(keys[-2 * n : -n] == keys[-n:] for n in range(min_words, longest + 1))


def _loop_lengths(
    word_count: int, max_ngram_words: int, min_repeats: int, doubled_min_words: int
) -> list[tuple[int, int]]:
    """(n-gram length, copies that make a loop), shortest first."""
    lengths = [(n, min_repeats) for n in range(1, max_ngram_words + 1)]
    if doubled_min_words > 0:
        longest = word_count // 2
        lengths += [(n, 2) for n in range(max(doubled_min_words, max_ngram_words + 1), longest + 1)]

    return lengths


def _loop_at(
    keys: Sequence[str], start: int, lengths: Sequence[tuple[int, int]]
) -> tuple[int, int]:
    """(n-gram length, copies) of the shortest loop starting at ``start``; (0, 0) if none."""
    for ngram_words, min_copies in lengths:
        copies = _copies(keys, start, ngram_words)
        if copies >= min_copies:
            return ngram_words, copies

    return 0, 0


def _copies(keys: Sequence[str], start: int, ngram_words: int) -> int:
    """How many times ``keys[start:start + ngram_words]`` repeats back to back."""
    ngram = keys[start : start + ngram_words]
    if len(ngram) < ngram_words:
        return 0
    copies = 1
    position = start + ngram_words
    while keys[position : position + ngram_words] == ngram:
        copies += 1
        position += ngram_words

    return copies


def _skip_partial_copy(keys: Sequence[str], start: int, ngram_words: int, after: int) -> int:
    """Index past a truncated copy of the loop's n-gram that ends the text at ``after``.

    Only a copy that runs to the end counts: that is where a decoder stopped by
    its token limit leaves one, possibly in the middle of a word; elsewhere the
    same words may be new speech.
    """
    tail = keys[after:]
    ngram = keys[start : start + len(tail)]
    if not 0 < len(tail) < ngram_words or tail[:-1] != ngram[:-1]:
        return after

    return len(keys) if ngram[-1].startswith(tail[-1]) else after
