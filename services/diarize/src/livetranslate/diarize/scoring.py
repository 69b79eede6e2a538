"""Diarization error rate (DER), scored the way NIST's md-eval scores it.

Reference and hypothesis are lists of :class:`Turn` (who spoke from when to
when). Time is cut into 10 ms frames; a collar around every reference
boundary is left out of scoring, because people disagree by a few frames on
where speech starts and ends. In each scored frame:

- *missed*: reference speakers the hypothesis does not cover there;
- *false alarm*: hypothesis speakers beyond the reference count there;
- *confusion*: speakers present in both counts but under the wrong label.

Hypothesis labels are arbitrary ("S1" …), so each is first mapped to at most
one reference speaker, choosing the mapping that agrees on the most speech
time (an assignment problem, solved exactly). DER is the sum of the three
over the scored reference speech time. Overlapped speech counts once per
speaker, as md-eval counts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_COLLAR_S",
    "ErrorRate",
    "Turn",
    "diarization_error_rate",
    "parse_rttm",
    "read_rttm",
]

DEFAULT_COLLAR_S: Final = 0.25
"""Seconds left out on each side of every reference boundary (md-eval's ``-c 0.25``)."""

FRAME_S: Final = 0.01


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker speaking from ``start_s`` to ``end_s`` (session seconds)."""

    speaker: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class ErrorRate:
    """The parts of a DER, in seconds, and the rate they add up to."""

    reference_s: float
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    mapping: dict[str, str]
    """Hypothesis label -> the reference speaker it was scored as."""

    @property
    def der(self) -> float:
        errors = self.missed_s + self.false_alarm_s + self.confusion_s
        return errors / self.reference_s if self.reference_s else 0.0


def parse_rttm(text: str, file_id: str | None = None) -> list[Turn]:
    """``SPEAKER`` lines of an RTTM document as turns; other line types are skipped.

    With ``file_id``, only that recording's lines are kept.
    """
    turns = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number} needs at least 8 fields; got {line!r}")
        if file_id is not None and fields[1] != file_id:
            continue
        start_s, duration_s = float(fields[3]), float(fields[4])
        turns.append(Turn(fields[7], start_s, start_s + duration_s))
    return turns


def read_rttm(path: Path, file_id: str | None = None) -> list[Turn]:
    return parse_rttm(path.read_text(), file_id)


def diarization_error_rate(
    reference: Sequence[Turn],
    hypothesis: Sequence[Turn],
    *,
    collar_s: float = DEFAULT_COLLAR_S,
) -> ErrorRate:
    """Score ``hypothesis`` against ``reference``; see the module text for the rules."""
    end_s = max((turn.end_s for turn in [*reference, *hypothesis]), default=0.0)
    frames = int(np.ceil(end_s / FRAME_S)) + 1
    ref_labels, ref = _activity(reference, frames)
    hyp_labels, hyp = _activity(hypothesis, frames)
    scored = ~_collar_mask(reference, frames, collar_s)
    ref, hyp = ref[:, scored], hyp[:, scored]

    ref_count, hyp_count = ref.sum(axis=0), hyp.sum(axis=0)
    agreement = ref.astype(np.int64) @ hyp.T.astype(np.int64)
    mapping = _best_mapping(agreement)
    correct = sum(agreement[r, h] for h, r in mapping.items())

    return ErrorRate(
        reference_s=float(ref_count.sum()) * FRAME_S,
        missed_s=float(np.maximum(ref_count - hyp_count, 0).sum()) * FRAME_S,
        false_alarm_s=float(np.maximum(hyp_count - ref_count, 0).sum()) * FRAME_S,
        confusion_s=float(np.minimum(ref_count, hyp_count).sum() - correct) * FRAME_S,
        mapping={hyp_labels[h]: ref_labels[r] for h, r in mapping.items()},
    )


def _activity(turns: Iterable[Turn], frames: int) -> tuple[list[str], npt.NDArray[np.bool_]]:
    """Speaker labels, and a (speakers, frames) matrix of who speaks in which frame."""
    turns = list(turns)
    labels = sorted({turn.speaker for turn in turns})
    active = np.zeros((len(labels), frames), dtype=bool)
    for turn in turns:
        first, last = _frame(turn.start_s), _frame(turn.end_s)
        active[labels.index(turn.speaker), first:last] = True
    return labels, active


def _collar_mask(reference: Iterable[Turn], frames: int, collar_s: float) -> npt.NDArray[np.bool_]:
    """Frames within ``collar_s`` of any reference start or end."""
    mask = np.zeros(frames, dtype=bool)
    if collar_s <= 0:
        return mask
    for turn in reference:
        for boundary_s in (turn.start_s, turn.end_s):
            mask[max(_frame(boundary_s - collar_s), 0) : _frame(boundary_s + collar_s)] = True
    return mask


def _frame(time_s: float) -> int:
    return round(time_s / FRAME_S)


def _best_mapping(agreement: npt.NDArray[np.int64]) -> dict[int, int]:
    """Hypothesis index -> reference index, one-to-one, maximising total agreement."""
    refs, hyps = agreement.shape
    if not refs or not hyps:
        return {}
    size = max(refs, hyps)
    cost = np.zeros((size, size), dtype=np.float64)
    cost[:refs, :hyps] = -agreement
    rows = _hungarian(cost)
    return {
        int(h): int(r) for r, h in enumerate(rows) if r < refs and h < hyps and agreement[r, h] > 0
    }


def _hungarian(cost: npt.NDArray[np.float64]) -> list[int]:
    """Column assigned to each row of a square cost matrix, at least total cost.

    The O(n^3) shortest augmenting path form of the Hungarian method, so the
    scorer needs no SciPy for the handful of speakers a session has.
    """
    n = len(cost)
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    owner = [0] * (n + 1)  # owner[column] = row (1-based); 0 means free
    for row in range(1, n + 1):
        owner[0] = row
        column = 0
        slack = np.full(n + 1, np.inf)
        came_from = [0] * (n + 1)
        used = [False] * (n + 1)
        while owner[column] != 0:
            used[column] = True
            current_row, delta, next_column = owner[column], np.inf, 0
            for candidate in range(1, n + 1):
                if used[candidate]:
                    continue
                reduced = cost[current_row - 1, candidate - 1] - u[current_row] - v[candidate]
                if reduced < slack[candidate]:
                    slack[candidate], came_from[candidate] = reduced, column
                if slack[candidate] < delta:
                    delta, next_column = slack[candidate], candidate
            for candidate in range(n + 1):
                if used[candidate]:
                    u[owner[candidate]] += delta
                    v[candidate] -= delta
                else:
                    slack[candidate] -= delta
            column = next_column
        while column:
            previous = came_from[column]
            owner[column] = owner[previous]
            column = previous
    assignment = [0] * n
    for column in range(1, n + 1):
        if owner[column]:
            assignment[owner[column] - 1] = column - 1
    return assignment
