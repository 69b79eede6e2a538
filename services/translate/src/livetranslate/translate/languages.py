"""One code per language, whatever form a producer spelled it in.

Recognisers, browsers and models name languages differently: ``pt``, ``pt-BR``,
``pt_BR.UTF-8``, ``por_Latn``. Engines and routes are keyed by the lower-case
primary language subtag, with three-letter ISO 639 codes folded to two letters
where one exists. Region and script are dropped on purpose: ``pt-PT`` and
``pt-BR`` reach the same engine, which is what a live caption wants, at the cost
of regional wording.
"""

from __future__ import annotations

import re
from typing import Final

from livetranslate.translate._iso639 import DEPRECATED, NOT_A_LANGUAGE, TWO_LETTER
from livetranslate.translate.errors import UnsupportedLanguageError

__all__ = ["UnsupportedLanguageError", "normalize_language"]

# RFC 5646 ``langtag`` without the registered 4-8 letter languages; grandfathered
# tags such as ``i-klingon`` are rejected, as no translation model uses them.
_LANGTAG: Final = re.compile(
    r"""
    (?P<language>[a-z]{2,3})
    (?P<extlang>(?:-[a-z]{3}){0,3})
    (?:-[a-z]{4})?                              # script
    (?:-(?:[a-z]{2}|[0-9]{3}))?                 # region
    (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*    # variants
    (?:-[a-wyz0-9](?:-[a-z0-9]{2,8})+)*         # extensions
    (?:-x(?:-[a-z0-9]{1,8})+)?                  # private use
    """,
    re.ASCII | re.VERBOSE,
)

_EXPECTED: Final = "expected a BCP-47 tag or POSIX locale such as 'en', 'pt-BR' or 'zh_Hans'"


def normalize_language(code: str) -> str:
    """The one code this package uses for ``code``: ``"pt_BR"`` -> ``"pt"``.

    Raises ``UnsupportedLanguageError`` when ``code`` is not a language tag.
    """
    tag = _posix_to_bcp47(code)
    match = _LANGTAG.fullmatch(tag)
    if match is None:
        raise UnsupportedLanguageError(f"{code!r} is not a language code; {_EXPECTED}")

    language = _primary(match["language"], match["extlang"])
    if language in NOT_A_LANGUAGE:
        raise UnsupportedLanguageError(f"{code!r} names no particular language")

    return language


def _posix_to_bcp47(code: str) -> str:
    """``"pt_BR.UTF-8@euro"`` -> ``"pt-br"``: POSIX codeset and modifier dropped."""
    base = re.split(r"[.@]", code.strip(), maxsplit=1)[0]

    return base.replace("_", "-").lower()


def _primary(language: str, extlang: str) -> str:
    # An extended language subtag is the language itself ("zh-yue" is Cantonese);
    # RFC 5646 section 4.5 makes it the primary subtag in canonical form.
    if extlang:
        language = extlang.split("-")[1]
    language = DEPRECATED.get(language, language)

    return TWO_LETTER.get(language, language)
