"""Translation engines of LiveTranslate: Bergamot, CTranslate2, and a router.

``Router([BergamotEngine(), CTranslate2Engine({...})]).translate(texts, "en", "pt")``
translates a batch with the first engine that serves the pair, pivoting through
English when no engine does. ``check_targets`` validates a session's targets
against the engines before the session starts; ``livetranslate.translate.stage``
holds the pipeline stage.
"""

from livetranslate.translate.configuration import check_glossary, check_targets
from livetranslate.translate.context import Context, ContextPair
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
from livetranslate.translate.glossary import Glossary
from livetranslate.translate.languages import normalize_language

__all__ = [
    "BergamotEngine",
    "CTranslate2Engine",
    "CTranslate2Model",
    "CTranslate2Options",
    "Context",
    "ContextPair",
    "Glossary",
    "LanguagePair",
    "ModelFolderError",
    "PivotEngine",
    "Router",
    "TranslationEngine",
    "TranslationFailed",
    "UnsupportedLanguageError",
    "UnsupportedPairError",
    "check_glossary",
    "check_targets",
    "normalize_language",
]
