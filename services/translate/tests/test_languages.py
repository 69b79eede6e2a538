"""normalize_language: every spelling of a language meets on one code."""

from __future__ import annotations

import pytest

from livetranslate.translate.languages import UnsupportedLanguageError, normalize_language


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("pt", "pt"),
        ("PT", "pt"),
        ("pt-BR", "pt"),
        ("pt_BR", "pt"),
        ("pt_BR.UTF-8", "pt"),
        ("pt_PT@euro", "pt"),
        ("por", "pt"),
        ("por_Latn", "pt"),
        ("en-US", "en"),
        ("eng_Latn", "en"),
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh_Hans", "zh"),
        ("zh-Hant-TW", "zh"),
        ("zh-cmn-Hans-CN", "zh"),
        ("sr-Latn-RS", "sr"),
        ("es-419", "es"),
        ("de-DE-1996", "de"),
        ("en-GB-oxendict", "en"),
        ("en-US-u-ca-gregory", "en"),
        ("en-x-caption", "en"),
        (" fr ", "fr"),
        ("haw", "haw"),
    ],
)
def test_aliases_meet_on_the_primary_subtag(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


def test_an_extended_language_subtag_is_the_language() -> None:
    assert normalize_language("zh-yue") == "yue"


@pytest.mark.parametrize(("code", "expected"), [("iw", "he"), ("in", "id"), ("jw", "jv")])
def test_withdrawn_codes_map_to_their_successors(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


@pytest.mark.parametrize(
    "code",
    ["", "   ", "e", "123", "english", "port", "pt-", "-pt", "pt--BR", "xx-yy-zz-ww", "pt-BR-BR",
     "en US", "é", "日本語", "pt_BR_UTF8_x", "i-klingon"],
)  # fmt: skip
def test_a_string_that_is_no_language_code_is_rejected(code: str) -> None:
    with pytest.raises(UnsupportedLanguageError, match="is not a language code"):
        normalize_language(code)


@pytest.mark.parametrize("code", ["und", "mul", "zxx", "mis"])
def test_codes_for_no_particular_language_are_rejected(code: str) -> None:
    with pytest.raises(UnsupportedLanguageError, match="no particular language"):
        normalize_language(code)


def test_the_error_is_a_value_error_that_names_the_code() -> None:
    with pytest.raises(ValueError, match="'xx-yy-zz'"):
        normalize_language("xx-yy-zz")
