"""SpeakerLabels, speaker_runs and split_at_speaker_changes: who spoke, and where to cut."""

from __future__ import annotations

from livetranslate.contracts import v1
from livetranslate.translate.speakers import SpeakerLabels, speaker_runs, split_at_speaker_changes


def _turn(
    utterance_id: str, speaker: str, start_s: float, end_s: float, turns: int = 1
) -> v1.SpeakerTurn:
    return v1.SpeakerTurn(
        session_id="s1",
        utterance_id=utterance_id,
        speaker=speaker,
        start_s=start_s,
        end_s=end_s,
        turns=turns,
    )


def test_an_utterance_without_turns_has_no_speaker() -> None:
    labels = SpeakerLabels()

    assert labels.speaker_of(["u1"]) is None
    assert not labels.complete("u1")
    assert not labels.seen


def test_the_speaker_of_a_single_turn_is_known_and_complete() -> None:
    labels = SpeakerLabels()
    labels.add(_turn("u1", "S1", 0.0, 2.0))

    assert labels.speaker_of(["u1"]) == "S1"
    assert labels.complete("u1")
    assert labels.seen


def test_an_utterance_of_several_turns_belongs_to_who_spoke_longest_in_all() -> None:
    labels = SpeakerLabels()
    labels.add(_turn("u1", "S1", 0.0, 1.0, turns=3))
    labels.add(_turn("u1", "S2", 1.0, 2.5, turns=3))
    labels.add(_turn("u1", "S1", 2.5, 3.2, turns=3))

    # S2 has the longest turn (1.5 s), S1 the most time (1.7 s).
    assert labels.speaker_of(["u1"]) == "S1"


def test_an_utterance_is_complete_only_once_all_its_turns_arrived() -> None:
    labels = SpeakerLabels()
    labels.add(_turn("u1", "S1", 0.0, 1.0, turns=2))

    assert not labels.complete("u1")
    labels.add(_turn("u1", "S2", 1.0, 3.0, turns=2))
    assert labels.complete("u1")
    assert labels.speaker_of(["u1"]) == "S2"


def test_a_redelivered_turn_counts_once() -> None:
    labels = SpeakerLabels()
    for _ in range(3):
        labels.add(_turn("u1", "S1", 0.0, 1.0, turns=2))
    labels.add(_turn("u1", "S2", 1.0, 2.5, turns=2))

    assert labels.speaker_of(["u1"]) == "S2"


def test_several_utterances_add_up_per_speaker() -> None:
    labels = SpeakerLabels()
    labels.add(_turn("u1", "S1", 0.0, 1.0))
    labels.add(_turn("u2", "S2", 1.0, 1.5))
    labels.add(_turn("u3", "S1", 2.0, 2.2))

    assert labels.speaker_of(["u2", "u3"]) == "S2"
    assert labels.speaker_of(["u1", "u2", "u3"]) == "S1"


def test_the_oldest_utterances_are_forgotten_past_the_bound() -> None:
    labels = SpeakerLabels(kept=2)
    for number in range(3):
        labels.add(_turn(f"u{number}", "S1", number, number + 1.0))

    assert labels.speaker_of(["u0"]) is None
    assert labels.speaker_of(["u2"]) == "S1"
    assert labels.seen


def test_finals_of_one_speaker_stay_together() -> None:
    assert split_at_speaker_changes(["a", "b"], {"a": "S1", "b": "S1"}.get) == [["a", "b"]]


def test_a_speaker_change_starts_a_new_run() -> None:
    speakers = {"a": "S1", "b": "S2", "c": "S2", "d": "S1"}

    assert split_at_speaker_changes(list("abcd"), speakers.get) == [["a"], ["b", "c"], ["d"]]


def test_finals_of_unknown_speaker_stay_with_what_came_before() -> None:
    speakers = {"a": "S1", "c": "S1", "d": "S2"}

    assert split_at_speaker_changes(list("abcde"), speakers.get) == [["a", "b", "c"], ["d", "e"]]


def test_without_any_label_everything_is_one_run() -> None:
    assert split_at_speaker_changes(list("abc"), lambda _: None) == [["a", "b", "c"]]
    assert split_at_speaker_changes([], lambda _: None) == []


def _word(text: str, start_s: float, end_s: float) -> v1.Word:
    return v1.Word(text=text, start_s=start_s, end_s=end_s, probability=0.9)


def test_words_are_cut_where_the_turn_covering_their_middle_changes() -> None:
    words = [_word("Hi", 0.0, 0.4), _word("there.", 0.4, 1.0), _word("Hello.", 1.2, 1.9)]
    turns = [_turn("u1", "S1", 0.0, 1.1, turns=2), _turn("u1", "S2", 1.1, 2.0, turns=2)]

    runs = speaker_runs(words, turns)

    assert [(speaker, [w.text for w in run]) for speaker, run in runs] == [
        ("S1", ["Hi", "there."]),
        ("S2", ["Hello."]),
    ]


def test_a_word_outside_every_turn_goes_to_the_nearest() -> None:
    words = [_word("So", 0.0, 0.2), _word("yes.", 3.0, 3.4)]
    turns = [_turn("u1", "S1", 0.5, 1.0, turns=2), _turn("u1", "S2", 2.0, 2.5, turns=2)]

    assert [speaker for speaker, _ in speaker_runs(words, turns)] == ["S1", "S2"]


def test_without_turns_the_words_are_one_run_of_nobody() -> None:
    words = [_word("Hi", 0.0, 0.4), _word("there.", 0.4, 1.0)]

    assert speaker_runs(words, []) == [(None, words)]
