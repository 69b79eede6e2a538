"""Caption lines per speaker, each with the translations of its own words."""

from __future__ import annotations

from livetranslate.cli.session import Caption
from livetranslate.contracts import v1


def _word(text: str, start_s: float, end_s: float) -> v1.Word:
    return v1.Word(text=text, start_s=start_s, end_s=end_s, probability=0.9)


def _turn(speaker: str, start_s: float, end_s: float) -> v1.SpeakerTurn:
    return v1.SpeakerTurn(
        session_id="s1", utterance_id="u1", speaker=speaker, start_s=start_s, end_s=end_s, turns=2
    )


def _caption(translation_parts: dict[str, dict[float, str]]) -> Caption:
    words = (_word("Coming?", 0.0, 0.8), _word("Yes.", 1.2, 1.6))
    return Caption(
        utterance_id="u1",
        start_s=0.0,
        end_s=1.6,
        text="Coming? Yes.",
        language="en",
        words=words,
        turns=[_turn("S1", 0.0, 1.0), _turn("S2", 1.0, 1.6)],
        translation_parts=translation_parts,
    )


def test_each_speakers_line_gets_the_translation_that_ends_with_it() -> None:
    caption = _caption({"pt": {0.8: "Vem?", 1.6: "Sim."}})

    lines = caption.by_speaker()

    assert [(line.speaker, line.text, line.translations) for line in lines] == [
        ("S1", "Coming?", {"pt": "Vem?"}),
        ("S2", "Yes.", {"pt": "Sim."}),
    ]


def test_a_translation_of_the_whole_utterance_goes_under_its_last_line() -> None:
    caption = _caption({"pt": {float("inf"): "Vem? Sim."}})

    lines = caption.by_speaker()

    assert [line.translations for line in lines] == [{}, {"pt": "Vem? Sim."}]
    assert caption.translated_to_the_end("pt")


def test_a_caption_is_not_translated_until_its_last_speaker_is() -> None:
    assert not _caption({"pt": {0.8: "Vem?"}}).translated_to_the_end("pt")
    assert _caption({"pt": {0.8: "Vem?", 1.6: "Sim."}}).translated_to_the_end("pt")
    assert not _caption({}).translated_to_the_end("pt")
