"""Checks for what a session asks of translation, run when the session is configured.

A target language nobody can translate into should stop the command that
configures the session, with a message naming the pair and what is available,
rather than surface later as dead letters. The checks use the engines of the
machine they run on; a stage elsewhere with other models still dead-letters
what it cannot serve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from livetranslate.translate._pairs import format_pairs
from livetranslate.translate.engines import Router
from livetranslate.translate.errors import UnsupportedPairError
from livetranslate.translate.languages import normalize_language

__all__ = ["check_glossary", "check_targets"]


def check_targets(source: str | None, targets: Iterable[str], router: Router) -> tuple[str, ...]:
    """``targets`` as normalised codes, each once, in the order given.

    With a ``source`` language, each target must be reachable from it (directly
    or through the pivot); without one (the recogniser will detect it), each
    target must be the output of some pair. A target equal to the source is
    kept: the stage simply has nothing to do for it.

    Raises ``UnsupportedLanguageError`` for a string that is no language code,
    and ``UnsupportedPairError`` naming the pair and the pairs available.
    """
    codes = tuple(dict.fromkeys(normalize_language(target) for target in targets))
    if source is None:
        reachable = {target for _, target in router.pairs()}
        for code in codes:
            if code not in reachable:
                raise UnsupportedPairError(
                    f"no engine translates into {code}; available: {format_pairs(router.pairs())}"
                )
        return codes
    spoken = normalize_language(source)
    for code in codes:
        if code != spoken:
            router.resolve(spoken, code)

    return codes


def check_glossary(glossary: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """The glossary with its languages normalised and its terms stripped.

    Raises ``UnsupportedLanguageError`` for a key that is no language code, and
    ``ValueError`` for a blank term or a blank translation.
    """
    checked: dict[str, dict[str, str]] = {}
    for language, terms in glossary.items():
        entries = checked.setdefault(normalize_language(language), {})
        for term, translation in terms.items():
            if not term.strip() or not translation.strip():
                raise ValueError(
                    f"glossary terms and translations must not be blank; "
                    f"got {term!r} -> {translation!r} for {language}"
                )
            entries[term.strip()] = translation.strip()

    return checked
