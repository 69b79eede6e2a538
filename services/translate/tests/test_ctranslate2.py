"""CTranslate2Engine end to end on tiny random-weight models built by the tests."""

from __future__ import annotations

from pathlib import Path

import ctranslate2
import pytest
from livetranslate.translate.engines import (
    CTranslate2Engine,
    CTranslate2Model,
    CTranslate2Options,
    ModelFolderError,
    UnsupportedPairError,
)
from livetranslate.translate.testing import (
    NLLB_LANGUAGES,
    build_tiny_marian,
    build_tiny_nllb,
    tokenizer,
)

_GREEDY = CTranslate2Options(beam_size=1, max_length_ratio=1.0, max_length_extra_tokens=2)


@pytest.fixture(scope="module")
def marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("marian"))


@pytest.fixture(scope="module")
def nllb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_nllb(tmp_path_factory.mktemp("nllb"))


def _longest_piece(folder: Path) -> int:
    sp = tokenizer(folder / "target.spm")
    return max(len(sp.id_to_piece(i)) for i in range(sp.get_piece_size()))


def test_a_batch_of_three_gives_three_strings(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian})

    out = engine.translate(["the cat sees the dog", "big river", "we speak today"], "en", "pt")

    assert len(out) == 3
    assert all(isinstance(text, str) and text for text in out)


def test_output_length_follows_the_input_length(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian}, _GREEDY)
    short, long = "the cat", "the big red cat sees the small blue dog near the river"

    out_short, out_long = engine.translate([short, long], "en", "pt")

    # The tiny model never ends a sentence, so it writes up to the cap: one token
    # per input token (with </s>) plus two.
    sp = tokenizer(marian / "source.spm")
    for source, output in ((short, out_short), (long, out_long)):
        cap = len(sp.encode(source)) + 1 + 2
        assert 0 < len(output) <= cap * _longest_piece(marian)
    assert len(out_long) > len(out_short)


def test_sentences_of_one_text_are_translated_and_joined(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian}, _GREEDY)

    (out,) = engine.translate(["the cat runs.\nthe dog eats bread."], "en", "pt")

    assert out.count("\n") == 1


def test_batches_smaller_than_the_input_keep_the_order(marian: Path) -> None:
    texts = ["the cat", "the big red cat sees the dog", "a", "we speak", "water"]
    # A near-zero ratio gives every batch the same cap (three tokens), so an
    # output does not depend on which inputs shared its batch.
    fixed_cap = _GREEDY.model_copy(update={"max_length_ratio": 0.01})
    one_by_one = CTranslate2Engine({("en", "pt"): marian}, fixed_cap)
    batched = CTranslate2Engine(
        {("en", "pt"): marian}, fixed_cap.model_copy(update={"max_batch_size": 2})
    )

    expected = [one_by_one.translate([text], "en", "pt")[0] for text in texts]

    assert batched.translate(texts, "en", "pt") == expected


def test_blank_inputs_give_empty_outputs_without_loading_the_model(
    marian: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ctranslate2, "Translator", refuse)
    engine = CTranslate2Engine({("en", "pt"): marian})

    assert engine.translate(["", "  ", "\n"], "en", "pt") == ["", "", ""]


def test_a_blank_input_keeps_its_place_in_a_batch(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian}, _GREEDY)

    out = engine.translate(["the cat", "", "the dog"], "en", "pt")

    assert out[1] == "" and out[0] and out[2]


def test_a_five_thousand_character_text_is_translated(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian}, _GREEDY)
    text = " ".join(["the big red cat sees the small blue dog near the river."] * 90)[:5000]

    (out,) = engine.translate([text], "en", "pt")

    assert out


def test_pair_keys_are_normalised(marian: Path) -> None:
    engine = CTranslate2Engine({("en-US", "pt_BR"): marian})

    assert engine.pairs() == {("en", "pt")}
    assert engine.translate(["the cat"], "EN", "pt-PT")[0]


def test_a_pair_without_a_model_is_refused(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian})

    with pytest.raises(UnsupportedPairError, match=r"en->de; it translates en->pt"):
        engine.translate(["the cat"], "en", "de")


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match=rf"{tmp_path / 'nowhere'} for en->pt is missing"):
        CTranslate2Engine({("en", "pt"): tmp_path / "nowhere"})


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ("model.bin", "model.bin"),
        ("shared_vocabulary.json", "shared_vocabulary.json"),
        ("target.spm", "target.spm"),
        ("source.spm", "source.spm"),
    ],
)
def test_a_missing_file_is_named_with_its_folder(tmp_path: Path, removed: str, named: str) -> None:
    folder = build_tiny_marian(tmp_path / "model")
    (folder / removed).unlink()

    with pytest.raises(ModelFolderError, match=rf"model folder {folder} for en->pt lacks {named}"):
        CTranslate2Engine({("en", "pt"): folder})


def test_a_model_that_does_not_load_stops_load(tmp_path: Path) -> None:
    folder = build_tiny_marian(tmp_path / "model")
    (folder / "model.bin").write_bytes(b"not a model")
    engine = CTranslate2Engine({("en", "pt"): folder})

    with pytest.raises(ModelFolderError, match=rf"model folder {folder} for en->pt did not load"):
        engine.load()


def test_a_multilingual_model_gets_its_language_tokens(nllb: Path) -> None:
    source, target = NLLB_LANGUAGES
    model = CTranslate2Model(folder=nllb, source_prefix=(source,), target_prefix=(target,))
    engine = CTranslate2Engine({("en", "pt"): model}, _GREEDY)

    out = engine.translate(["the cat sees the dog", "big river", "we speak today"], "en", "pt")

    # CTranslate2 returns the target prefix inside each hypothesis; it is removed.
    assert len(out) == 3
    assert all(text and not text.startswith(target) for text in out)


def test_a_shared_tokenizer_file_is_accepted(nllb: Path) -> None:
    assert CTranslate2Engine({("en", "pt"): nllb}).pairs() == {("en", "pt")}
