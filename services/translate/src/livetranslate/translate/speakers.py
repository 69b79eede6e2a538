"""Who spoke each utterance, as the diarize stage labels it on ``speaker.<session>``.

Transcripts carry no speaker. The diarize stage publishes one ``SpeakerTurn``
per turn of an utterance, usually a little before the utterance's final, but
possibly after it, or never when diarize is not running. An utterance with
several turns belongs to the speaker who spoke longest in it, except that
``speaker_runs`` cuts its words where the speaker changes, so that each
speaker's part can be translated on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from livetranslate.contracts import v1

__all__ = ["SpeakerLabels", "speaker_runs", "split_at_speaker_changes"]

T = TypeVar("T")

_UTTERANCES_KEPT = 1024
"""Utterances remembered per session; a label older than that is no longer asked for."""


@dataclass
class _Turns:
    """The turns of one utterance that arrived, and how many it has."""

    expected: int
    turns: dict[tuple[str, float, float], v1.SpeakerTurn] = field(default_factory=dict)
    """Keyed by speaker and times, so that a redelivered turn counts once."""


class SpeakerLabels:
    """The speakers of one session's recent utterances."""

    def __init__(self, kept: int = _UTTERANCES_KEPT) -> None:
        self._utterances: OrderedDict[str, _Turns] = OrderedDict()
        self._kept = kept
        self._seen = False

    @property
    def seen(self) -> bool:
        """Whether a turn ever arrived for the session, that is, diarize runs for it."""
        return self._seen

    def add(self, turn: v1.SpeakerTurn) -> None:
        turns = self._utterances.setdefault(turn.utterance_id, _Turns(turn.turns))
        turns.expected = max(turns.expected, turn.turns)
        turns.turns[(turn.speaker, turn.start_s, turn.end_s)] = turn
        self._seen = True
        while len(self._utterances) > self._kept:
            self._utterances.popitem(last=False)

    def complete(self, utterance_id: str) -> bool:
        """Whether every turn of the utterance has arrived."""
        turns = self._utterances.get(utterance_id)
        return turns is not None and len(turns.turns) >= turns.expected

    def turns_of(self, utterance_id: str) -> list[v1.SpeakerTurn]:
        """The turns of the utterance that arrived, in time order."""
        turns = self._utterances.get(utterance_id)
        return sorted(turns.turns.values(), key=lambda t: t.start_s) if turns else []

    def speaker_of(self, utterance_ids: Iterable[str]) -> str | None:
        """Who spoke longest across the utterances; None when none of them is labelled."""
        seconds: dict[str, float] = {}
        for utterance_id in utterance_ids:
            turns = self._utterances.get(utterance_id)
            if turns is None:
                continue
            for turn in turns.turns.values():
                turn_s = max(turn.end_s - turn.start_s, 0.0)
                seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + turn_s
        if not seconds:
            return None

        return max(seconds, key=seconds.__getitem__)


def split_at_speaker_changes(
    items: Sequence[T], speaker_of: Callable[[T], str | None]
) -> list[list[T]]:
    """``items`` in order, cut where a known speaker differs from the last known before it.

    An item whose speaker is unknown stays with the items before it: only a
    label that says otherwise keeps two items apart.
    """
    runs: list[list[T]] = []
    last_known: str | None = None
    for item in items:
        speaker = speaker_of(item)
        changed = speaker is not None and last_known is not None and speaker != last_known
        if not runs or changed:
            runs.append([])
        runs[-1].append(item)
        last_known = speaker or last_known

    return runs


def speaker_runs(
    words: Sequence[v1.Word], turns: Sequence[v1.SpeakerTurn]
) -> list[tuple[str | None, list[v1.Word]]]:
    """The words in order, cut where the speaker changes.

    Each word goes to the turn that covers its middle (the surest, where turns
    overlap), else to the nearest turn; with no turns every word's speaker is None.
    """
    runs: list[tuple[str | None, list[v1.Word]]] = []
    for word in words:
        speaker = _speaker_at((word.start_s + word.end_s) / 2, turns)
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))

    return runs


def _speaker_at(time_s: float, turns: Sequence[v1.SpeakerTurn]) -> str | None:
    if not turns:
        return None
    covering = [t for t in turns if t.start_s <= time_s <= t.end_s]
    if covering:
        return max(covering, key=lambda t: t.confidence).speaker
    nearest = min(turns, key=lambda t: min(abs(t.start_s - time_s), abs(t.end_s - time_s)))

    return nearest.speaker
