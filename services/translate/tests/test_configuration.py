"""check_targets and check_glossary: a session asks only for what can be served."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from livetranslate.translate.configuration import check_glossary, check_targets
from livetranslate.translate.context import Context
from livetranslate.translate.engines import (
    LanguagePair,
    Router,
    UnsupportedPairError,
)
from livetranslate.translate.errors import UnsupportedLanguageError


class _Serves:
    name = "fake"

    def __init__(self, *pairs: LanguagePair) -> None:
        self._pairs = frozenset(pairs)

    def pairs(self) -> frozenset[LanguagePair]:
        return self._pairs

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        return list(texts)


@pytest.fixture
def router() -> Router:
    return Router([_Serves(("en", "pt"), ("pt", "en"), ("en", "zh"), ("fr", "en"))])


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["pt"], ("pt",)),
        (["pt-BR", "pt_BR", "pt", "por"], ("pt",)),
        (["zh", "zh-CN", "zh_Hans"], ("zh",)),
        (["PT-br", "zh-CN"], ("pt", "zh")),
        ([], ()),
    ],
)
def test_aliases_are_normalised_to_one_code_each(
    router: Router, targets: list[str], expected: tuple[str, ...]
) -> None:
    assert check_targets("en-US", targets, router) == expected


def test_an_unknown_code_names_itself(router: Router) -> None:
    with pytest.raises(UnsupportedLanguageError, match="'portuguese' is not a language code"):
        check_targets("en", ["portuguese"], router)


def test_an_unsupported_pair_names_the_pair_and_what_is_available(router: Router) -> None:
    with pytest.raises(UnsupportedPairError, match=r"en->ja.*available: en->pt"):
        check_targets("en", ["pt", "ja"], router)


def test_a_pair_served_through_the_pivot_is_accepted(router: Router) -> None:
    assert check_targets("fr", ["pt"], router) == ("pt",)


def test_without_a_source_each_target_must_be_the_output_of_some_pair(router: Router) -> None:
    assert check_targets(None, ["pt", "zh-CN"], router) == ("pt", "zh")
    with pytest.raises(UnsupportedPairError, match="no engine translates into de"):
        check_targets(None, ["de"], router)


def test_the_source_language_itself_is_allowed_as_a_target(router: Router) -> None:
    assert check_targets("en", ["en", "pt"], router) == ("en", "pt")


def test_a_glossary_gets_normalised_language_keys_and_stripped_terms() -> None:
    assert check_glossary({"pt-BR": {" pipeline ": "pipeline "}}) == {
        "pt": {"pipeline": "pipeline"}
    }


def test_a_blank_glossary_term_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be blank"):
        check_glossary({"pt": {"pipeline": " "}})


def test_a_glossary_for_no_language_is_refused() -> None:
    with pytest.raises(UnsupportedLanguageError, match="'xx-yy-zz-ww'"):
        check_glossary({"xx-yy-zz-ww": {"a": "b"}})
