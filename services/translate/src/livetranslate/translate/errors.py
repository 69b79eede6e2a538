"""The exceptions of the translation engines, each named for the situation.

Configuration mistakes (a bad language code, a pair nobody serves, a model folder
with files missing) are ``ValueError`` so that start-up code can stop on them; a
model failing on one input at run time is ``TranslationFailed``.
"""

from __future__ import annotations

__all__ = [
    "ModelFolderError",
    "TranslationFailed",
    "UnsupportedLanguageError",
    "UnsupportedPairError",
]


class UnsupportedLanguageError(ValueError):
    """A string is not a language code; the message says what was expected."""


class UnsupportedPairError(ValueError):
    """No engine translates this pair; the message lists the pairs available."""


class ModelFolderError(ValueError):
    """A model folder is missing or lacks a file; the message names both."""


# N818 asks for an "Error" suffix; this name states the outcome a stage catches,
# beside the configuration errors above.
class TranslationFailed(RuntimeError):  # noqa: N818
    """The model raised while translating; the cause is chained."""
