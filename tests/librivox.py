"""The LibriVox test recordings and their reference transcripts."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer

__all__ = ["FOLDER", "normalise", "recordings", "wer"]

FOLDER = Path(__file__).parent / "data" / "librivox"


def recordings() -> dict[Path, str]:
    """Each recording with its reference text."""
    pairs = {}
    for line in (FOLDER / "transcription.txt").read_text().splitlines():
        stem, _, text = line.partition("\t")
        pairs[FOLDER / f"{stem}.wav"] = text
    return pairs


def normalise(text: str) -> str:
    """Lower case, no punctuation, 'mr' spelt as the reference spells it."""
    text = re.sub(r"[^a-z' ]+", " ", text.lower().replace("mr.", "mister"))
    return " ".join(text.replace("'", "").split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses]))
