"""CTranslate2Engine end to end on tiny random-weight models built by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import ctranslate2
import pytest

from livetranslate.translate.batching import Request, Result, translate_requests
from livetranslate.translate.engines import (
    ContextPair,
    CTranslate2Engine,
    CTranslate2Model,
    CTranslate2Options,
    ModelFolderError,
    UnsupportedPairError,
)
from livetranslate.translate.errors import UnsupportedLanguageError
from livetranslate.translate.glossary import Glossary
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


class _Recorder:
    """Stands in for ``ctranslate2.Translator``, recording every batch it is given."""

    created: ClassVar[list[str]] = []
    batches: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, folder: str, **options: Any) -> None:
        _Recorder.created.append(folder)
        self._inner = _REAL_TRANSLATOR(folder, **options)

    def translate_batch(self, source: list[list[str]], **options: Any) -> Any:
        _Recorder.batches.append({"source": source, **options})
        return self._inner.translate_batch(source, **options)


_REAL_TRANSLATOR = ctranslate2.Translator


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[_Recorder]:
    _Recorder.created, _Recorder.batches = [], []
    monkeypatch.setattr(ctranslate2, "Translator", _Recorder)
    return _Recorder


def test_context_goes_before_the_source_and_its_translation_starts_the_output(
    marian: Path, recorder: type[_Recorder]
) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian}, _GREEDY)
    earlier = (ContextPair("the cat runs.", "o gato corre."),)
    sp = tokenizer(marian / "source.spm")

    (out,) = engine.translate(["the dog eats."], "en", "pt", contexts=[earlier])

    (batch,) = recorder.batches
    assert batch["source"] == [[*sp.encode("the cat runs.", out_type=str),
                                *sp.encode("the dog eats.", out_type=str), "</s>"]]  # fmt: skip
    assert batch["target_prefix"] == [sp.encode("o gato corre.", out_type=str)]
    # The forced start is cut off again: only the new sentence's tokens remain,
    # as many as the cap for the new sentence alone allows.
    cap = len(sp.encode("the dog eats.")) + 1 + 2
    assert 0 < len(out) <= cap * _longest_piece(marian)


def test_context_is_trimmed_to_the_newest_sentences_that_fit(
    marian: Path, recorder: type[_Recorder]
) -> None:
    options = _GREEDY.model_copy(update={"max_context_chars": 30})
    engine = CTranslate2Engine({("en", "pt"): marian}, options)
    earlier = (ContextPair("a" * 40, "b"), ContextPair("the cat runs.", "o gato corre."))
    sp = tokenizer(marian / "source.spm")

    engine.translate(["the dog eats."], "en", "pt", contexts=[earlier])

    assert recorder.batches[0]["target_prefix"] == [sp.encode("o gato corre.", out_type=str)]


def test_a_model_can_be_told_to_go_without_context(marian: Path, recorder: type[_Recorder]) -> None:
    model = CTranslate2Model(folder=marian, context=False)
    engine = CTranslate2Engine({("en", "pt"): model}, _GREEDY)

    engine.translate(["the dog eats."], "en", "pt", contexts=[(ContextPair("a.", "b."),)])

    assert recorder.batches[0]["target_prefix"] is None


def test_only_the_first_piece_of_a_long_text_follows_the_context(
    marian: Path, recorder: type[_Recorder]
) -> None:
    engine = CTranslate2Engine({("en", "pt"): marian}, _GREEDY)
    sp = tokenizer(marian / "source.spm")

    engine.translate(
        ["the dog eats. the cat runs today."], "en", "pt", contexts=[(ContextPair("a.", "o."),)]
    )

    prefixes = recorder.batches[0]["target_prefix"]
    assert sorted(prefixes, key=len) == [[], sp.encode("o.", out_type=str)]


def test_an_nllb_family_model_gets_its_language_tokens_from_the_pair(
    nllb: Path, recorder: type[_Recorder]
) -> None:
    engine = CTranslate2Engine({("en", "pt"): CTranslate2Model(folder=nllb, family="nllb")})

    (out,) = engine.translate(["the cat sees the dog"], "en", "pt")

    (batch,) = recorder.batches
    assert batch["source"][0][0] == "eng_Latn" and batch["source"][0][-1] == "</s>"
    assert batch["target_prefix"] == [["por_Latn"]]
    assert out and "por_Latn" not in out


def test_one_folder_serving_two_pairs_is_loaded_once(nllb: Path, recorder: type[_Recorder]) -> None:
    model = CTranslate2Model(folder=nllb, family="nllb")
    engine = CTranslate2Engine({("en", "pt"): model, ("pt", "en"): model})

    engine.translate(["the cat"], "en", "pt")
    engine.translate(["o gato"], "pt", "en")

    assert recorder.created == [str(nllb)]
    assert [batch["target_prefix"] for batch in recorder.batches] == [
        [["por_Latn"]],
        [["eng_Latn"]],
    ]


def test_an_nllb_language_without_a_known_token_is_named(nllb: Path) -> None:
    with pytest.raises(UnsupportedLanguageError, match="no nllb language token known for 'tlh'"):
        CTranslate2Engine({("en", "tlh"): CTranslate2Model(folder=nllb, family="nllb")})


def test_a_glossary_term_comes_out_as_specified_through_a_placeholder(tmp_path: Path) -> None:
    # This model writes the placeholder at every step, as a trained model copies
    # it once: what is tested is its way through tokenizing, decoding and restoring.
    folder = build_tiny_marian(tmp_path / "copies", always_writes="ZX0")
    engine = CTranslate2Engine({("en", "de"): folder}, _GREEDY)
    request = Request("the cat sees the dog", Glossary({"cat": "Katze"}))

    (result,) = translate_requests(engine, "en", "de", [request])

    assert result == Result("Katze")


def test_a_placeholder_the_model_drops_is_counted_as_missing(marian: Path) -> None:
    engine = CTranslate2Engine({("en", "de"): marian}, _GREEDY)
    request = Request("the cat sees the dog", Glossary({"cat": "Katze"}))

    (result,) = translate_requests(engine, "en", "de", [request])

    assert isinstance(result, Result)
    assert result.placeholders_lost and result.missing_terms == ("cat",)
    assert result.text
