"""Translation engines of LiveTranslate: Bergamot, CTranslate2, and a router.

``Router([BergamotEngine(), CTranslate2Engine({...})]).translate(texts, "en", "pt")``
translates a batch with the first engine that serves the pair, pivoting through
English when no engine does.
"""

from livetranslate.translate.engines import (
    BergamotEngine,
    CTranslate2Engine,
    CTranslate2Model,
    CTranslate2Options,
    LanguagePair,
    PivotEngine,
    Router,
    TranslationEngine,
)
from livetranslate.translate.errors import (
    ModelFolderError,
    TranslationFailed,
    UnsupportedLanguageError,
    UnsupportedPairError,
)
from livetranslate.translate.languages import normalize_language

__all__ = [
    "BergamotEngine",
    "CTranslate2Engine",
    "CTranslate2Model",
    "CTranslate2Options",
    "LanguagePair",
    "ModelFolderError",
    "PivotEngine",
    "Router",
    "TranslationEngine",
    "TranslationFailed",
    "UnsupportedLanguageError",
    "UnsupportedPairError",
    "normalize_language",
]
