"""The transcribe stage: speech audio in, partial and final transcripts out.

``engine`` holds the recogniser interface and its faster-whisper engine,
``guards`` the checks against invented text, ``stability`` the settled
prefix of partials.
"""

from livetranslate.transcribe.engine import (
    ModelUnavailableError,
    Recognition,
    RecognizedWord,
    Recognizer,
    RecognizerOptions,
    WhisperRecognizer,
)
from livetranslate.transcribe.stability import StablePrefix

__all__ = [
    "ModelUnavailableError",
    "Recognition",
    "RecognizedWord",
    "Recognizer",
    "RecognizerOptions",
    "StablePrefix",
    "WhisperRecognizer",
]
