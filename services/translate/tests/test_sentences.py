"""split_text and translate_in_pieces: long texts reach the model as sentences."""

from __future__ import annotations

import pytest

from livetranslate.translate.errors import TranslationFailed
from livetranslate.translate.sentences import ends_sentence, split_text, translate_in_pieces


def test_sentences_split_at_stops_followed_by_whitespace() -> None:
    split = split_text("Hello, how are you? I am fine.  Pi is 3.14 today!", 300)

    assert split.pieces == ("Hello, how are you?", "I am fine.", "Pi is 3.14 today!")


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert split_text('He said "yes." Then he left.', 300).pieces == (
        'He said "yes."',
        "Then he left.",
    )


def test_cjk_stops_need_no_whitespace() -> None:
    # The full-width question mark is the point of this test.
    text = "你好。你好吗？我很好"  # noqa: RUF001

    assert split_text(text, 300).pieces == ("你好。", "你好吗？", "我很好")  # noqa: RUF001


def test_line_breaks_survive_the_round_trip() -> None:
    text = "First line.\nSecond line\n\nNew paragraph."
    split = split_text(text, 300)

    assert split.pieces == ("First line.", "Second line", "New paragraph.")
    assert split.join(split.pieces, "en") == text


def test_other_whitespace_between_sentences_becomes_one_space() -> None:
    split = split_text("One.   Two.\tThree.", 300)

    assert split.join(split.pieces, "en") == "One. Two. Three."


def test_targets_written_without_spaces_are_joined_without_them() -> None:
    split = split_text("One. Two.", 300)

    assert split.join(["一。", "二。"], "zh") == "一。二。"


def test_a_long_sentence_is_cut_at_a_clause_mark_within_the_limit() -> None:
    sentence = ", ".join(["the engineers checked the pumps"] * 12) + "."
    pieces = split_text(sentence, 100).pieces

    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith((",", ".")) for piece in pieces)
    assert " ".join(pieces) == sentence


def test_a_sentence_without_clause_marks_is_cut_at_a_space() -> None:
    sentence = " ".join(["word"] * 100)
    pieces = split_text(sentence, 42).pieces

    assert all(len(piece) <= 42 for piece in pieces)
    assert " ".join(pieces) == sentence


def test_a_word_longer_than_the_limit_is_cut_anywhere() -> None:
    assert split_text("x" * 50, 20).pieces == ("x" * 20, "x" * 20, "x" * 10)


@pytest.mark.parametrize("blank", ["", "   ", "\n\n", " \t\n "])
def test_a_blank_text_has_no_pieces(blank: str) -> None:
    assert split_text(blank, 300).pieces == ()


def test_all_pieces_of_all_texts_go_to_the_model_in_one_call() -> None:
    calls: list[list[str]] = []

    def upper(pieces: list[str]) -> list[str]:
        calls.append(pieces)
        return [piece.upper() for piece in pieces]

    out = translate_in_pieces(["a. b.", "", "c."], 300, "en", upper)

    assert out == ["A. B.", "", "C."]
    assert calls == [["a.", "b.", "c."]]


def test_the_model_is_not_called_when_every_text_is_blank() -> None:
    def fail(pieces: list[str]) -> list[str]:
        raise AssertionError("called")

    assert translate_in_pieces(["", " "], 300, "en", fail) == ["", ""]


def test_a_model_that_loses_a_piece_is_reported() -> None:
    with pytest.raises(TranslationFailed, match="1 translations for 2 sentences"):
        translate_in_pieces(["a. b."], 300, "en", lambda pieces: pieces[:1])


@pytest.mark.parametrize(
    "text",
    ["We met.", "Did we?", "Yes!", "And then…", "Wait...", 'He said "go."', "(Really?) ",
     "会议结束了。", "本当？", "Done.\n"],  # noqa: RUF001 - the full-width stop is the point
)  # fmt: skip
def test_a_sentence_stop_ends_a_sentence(text: str) -> None:
    assert ends_sentence(text)


@pytest.mark.parametrize("text", ["so what we did was", "Pi is 3.14 and", "", "e.g", "会议"])
def test_text_without_a_final_stop_does_not_end_a_sentence(text: str) -> None:
    assert not ends_sentence(text)
