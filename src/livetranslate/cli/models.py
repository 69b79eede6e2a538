"""``livetranslate models``: the language pairs this machine's translation engines serve.

The engines are the ones the translate stage would build from the same
``LIVETRANSLATE_TRANSLATE_*`` settings; nothing is loaded, only model folders
are checked. Pairs served through the pivot language are listed with the two
engines that make them.
"""

from __future__ import annotations

from livetranslate.translate.engines import CTranslate2Engine, LanguagePair, Router
from livetranslate.translate.stage import TranslateSettings

__all__ = ["pair_lines"]

_NONE = (
    "no translation engine is configured: LIVETRANSLATE_TRANSLATE_BERGAMOT is false and "
    "LIVETRANSLATE_TRANSLATE_CT2_MODELS is empty"
)


def pair_lines(settings: TranslateSettings) -> list[str]:
    """A table of every pair served: the pair, the engine, and its model folder or route.

    Raises ``ModelFolderError`` when a configured model folder is incomplete.
    """
    engines = settings.engines()
    router = Router(engines)
    rows: list[tuple[str, str, str]] = []
    direct: set[LanguagePair] = set()
    for engine in engines:
        folders = engine.folders() if isinstance(engine, CTranslate2Engine) else {}
        for pair in sorted(engine.pairs() - direct):
            direct.add(pair)
            rows.append((_pair(pair), engine.name, str(folders.get(pair, ""))))
    for pair in sorted(router.pairs() - direct):
        rows.append((_pair(pair), router.resolve(*pair).name, "through en"))
    if not rows:
        return [_NONE]

    return _table([("pair", "engine", "model / route"), *rows])


def _pair(pair: LanguagePair) -> str:
    return f"{pair[0]}->{pair[1]}"


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(2)]

    return [
        f"{pair:<{widths[0]}}  {engine:<{widths[1]}}  {note}".rstrip()
        for pair, engine, note in rows
    ]
