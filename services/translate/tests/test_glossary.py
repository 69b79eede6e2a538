"""Glossary: terms out as placeholders, required translations back in, outputs checked."""

from __future__ import annotations

import pytest

from livetranslate.translate.engines import BergamotEngine
from livetranslate.translate.glossary import Glossary


def test_a_term_becomes_a_placeholder_and_comes_back_as_its_translation() -> None:
    protected = Glossary({"pipeline": "pipeline"}).protect("The pipeline is ready.")

    assert protected.text == "The ZX0 is ready."
    assert protected.restore("O ZX0 está pronto.").text == "O pipeline está pronto."


def test_the_longest_term_is_taken_first() -> None:
    glossary = Glossary({"pipeline": "pipeline", "release pipeline": "esteira"})

    protected = glossary.protect("Our release pipeline feeds the pipeline.")

    assert protected.text == "Our ZX0 feeds the ZX1."
    assert (
        protected.restore("Nossa ZX0 alimenta o ZX1.").text == "Nossa esteira alimenta o pipeline."
    )


def test_terms_match_whole_words_only() -> None:
    assert Glossary({"cat": "gato"}).protect("The category of the cat.").text == (
        "The category of the ZX0."
    )


def test_a_lower_case_term_matches_any_case_and_keeps_the_case_it_met() -> None:
    protected = Glossary({"pipeline": "esteira"}).protect("The PIPELINE, the Pipeline.")

    assert protected.restore("A ZX0, a ZX1.").text == "A ESTEIRA, a Esteira."


def test_a_term_with_capitals_matches_only_as_written() -> None:
    glossary = Glossary({"Apple": "Apple"})

    assert glossary.protect("An apple from Apple.").text == "An apple from ZX0."


def test_a_placeholder_that_starts_a_sentence_gets_a_capital() -> None:
    protected = Glossary({"pipeline": "pipeline"}).protect("It broke the pipeline.")

    assert protected.restore("ZX0 quebrou.").text == "Pipeline quebrou."


def test_a_translation_with_capitals_keeps_its_form_everywhere() -> None:
    protected = Glossary({"phone": "iPhone"}).protect("The phone rang.")

    assert protected.restore("ZX0 tocou.").text == "iPhone tocou."


def test_a_placeholder_written_twice_is_kept_once() -> None:
    protected = Glossary({"cat": "gato"}).protect("the cat")

    assert protected.restore("o ZX0 ZX0 ZX0").text == "o gato"


def test_a_dropped_placeholder_is_reported_as_lost() -> None:
    protected = Glossary({"cat": "gato", "dog": "cão"}).protect("the cat and the dog")

    restored = protected.restore("o ZX1 e o bicho")

    assert restored.lost == ("cat",)
    assert protected.missing(restored.text) == ("cat",)


def test_a_text_that_already_holds_the_code_gets_another_prefix() -> None:
    protected = Glossary({"cat": "gato"}).protect("Model ZX0 saw the cat.")

    assert protected.text == "Model ZX0 saw the QZX0."
    assert protected.restore("O modelo ZX0 viu o QZX0.").text == "O modelo ZX0 viu o gato."


def test_unspaced_scripts_match_inside_words() -> None:
    protected = Glossary({"会議": "meeting"}).protect("明日の会議です")

    assert protected.text == "明日のZX0です"


def test_missing_names_terms_whose_translation_is_not_in_the_output() -> None:
    protected = Glossary({"pipeline": "pipeline", "Brown": "Brown"}).protect(
        "Mr. Brown fixed the pipeline."
    )

    assert protected.missing("O Sr. Brown consertou o gasoduto.") == ("pipeline",)
    assert protected.missing("O Sr. Brown consertou o Pipeline.") == ()


def test_an_empty_glossary_changes_nothing() -> None:
    protected = Glossary().protect("The pipeline.")

    assert not Glossary()
    assert protected.text == "The pipeline."
    assert protected.restore("O gasoduto.").text == "O gasoduto."


@pytest.mark.model
def test_bergamot_carries_the_placeholder_through() -> None:
    glossary = Glossary({"pipeline": "pipeline"})
    engine = BergamotEngine()
    protected = glossary.protect("The pipeline is ready.")
    (plain,) = engine.translate(["The pipeline is ready."], "en", "pt")

    (output,) = engine.translate([protected.text], "en", "pt")
    restored = protected.restore(output)

    assert "gasoduto" in plain  # what the model says unguided
    assert restored.text == "O pipeline está pronto."
    assert restored.lost == () and protected.missing(restored.text) == ()
