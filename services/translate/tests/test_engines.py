"""Router: direct pairs, pivots through English, and what it says when it cannot."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from livetranslate.translate.engines import (
    LanguagePair,
    PivotEngine,
    Router,
    TranslationEngine,
    TranslationFailed,
    UnsupportedPairError,
)


class _Tagging:
    """An engine that marks each text with its name and the pair it was asked for."""

    def __init__(self, name: str, *pairs: LanguagePair) -> None:
        self.name = name
        self._pairs = frozenset(pairs)
        self.calls: list[tuple[list[str], str, str]] = []

    def pairs(self) -> frozenset[LanguagePair]:
        return self._pairs

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        self.calls.append((list(texts), source, target))
        return [f"<{self.name} {source}>{target}>{text}" if text else "" for text in texts]


class _Lossy(_Tagging):
    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        return super().translate(texts, source, target)[1:]


def test_a_direct_pair_goes_to_the_first_engine_that_has_it() -> None:
    first, second = _Tagging("a", ("en", "pt")), _Tagging("b", ("en", "pt"))
    router = Router([first, second])

    assert router.resolve("en", "pt") is first
    assert router.translate(["hi"], "en", "pt") == ["<a en>pt>hi"]
    assert second.calls == []


def test_codes_are_normalised_before_lookup() -> None:
    engine = _Tagging("a", ("en", "pt"))

    assert Router([engine]).resolve("en-US", "pt_BR") is engine


def test_a_pair_without_an_engine_pivots_through_english() -> None:
    into, out_of = _Tagging("a", ("fr", "en")), _Tagging("b", ("en", "pt"))
    router = Router([into, out_of])

    engine = router.resolve("fr", "pt")

    assert isinstance(engine, PivotEngine)
    assert engine.name == "a+b"
    assert router.translate(["salut", ""], "fr-FR", "pt") == ["<b en>pt><a fr>en>salut", ""]


def test_a_direct_engine_beats_a_pivot() -> None:
    direct = _Tagging("direct", ("fr", "pt"))
    router = Router([_Tagging("a", ("fr", "en")), _Tagging("b", ("en", "pt")), direct])

    assert router.resolve("fr", "pt") is direct


def test_the_pivot_language_can_be_changed() -> None:
    router = Router([_Tagging("a", ("de", "es")), _Tagging("b", ("es", "pt"))], pivot="es")

    assert router.translate(["x"], "de", "pt") == ["<b es>pt><a de>es>x"]


def test_an_unsupported_pair_names_itself_and_what_is_available() -> None:
    router = Router([_Tagging("a", ("en", "pt"), ("pt", "en"))])

    with pytest.raises(UnsupportedPairError) as caught:
        router.resolve("de", "ja")

    assert str(caught.value) == (
        "no engine translates de->ja, directly or through en; available: en->pt, pt->en"
    )


def test_a_pivot_needs_both_legs() -> None:
    router = Router([_Tagging("a", ("fr", "en"))])

    with pytest.raises(UnsupportedPairError, match="fr->pt"):
        router.translate(["salut"], "fr", "pt")


def test_a_router_without_engines_says_none_are_available() -> None:
    with pytest.raises(UnsupportedPairError, match="available: none"):
        Router([]).resolve("en", "pt")


def test_a_bad_language_code_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'english' is not a language code"):
        Router([_Tagging("a", ("en", "pt"))]).resolve("english", "pt")


def test_pairs_lists_direct_and_pivoted_pairs() -> None:
    router = Router(
        [_Tagging("a", ("fr", "en"), ("en", "fr")), _Tagging("b", ("en", "pt"), ("pt", "en"))]
    )

    assert router.pairs() == {
        ("fr", "en"),
        ("en", "fr"),
        ("en", "pt"),
        ("pt", "en"),
        ("fr", "pt"),
        ("pt", "fr"),
    }


def test_a_router_is_itself_an_engine() -> None:
    inner: TranslationEngine = Router([_Tagging("a", ("en", "pt"))])
    outer = Router([inner])

    assert outer.translate(["hi"], "en", "pt") == ["<a en>pt>hi"]


def test_an_engine_that_loses_a_text_is_reported() -> None:
    router = Router([_Lossy("lossy", ("en", "pt"))])

    with pytest.raises(TranslationFailed, match="lossy returned 1 translations for 2 texts"):
        router.translate(["a", "b"], "en", "pt")


def test_a_pivot_engine_refuses_other_pairs() -> None:
    engine = PivotEngine(
        _Tagging("a", ("fr", "en")), _Tagging("b", ("en", "pt")), ("fr", "pt"), "en"
    )

    with pytest.raises(UnsupportedPairError, match="a\\+b does not translate"):
        engine.translate(["x"], "de", "pt")
