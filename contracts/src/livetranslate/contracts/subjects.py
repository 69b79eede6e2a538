"""Subject names of the pipeline, built and parsed in one place.

Every subject ends with the session id, so that one wildcard selects a
session everywhere: ``audio.ingest.<session>``, ``transcript.final.<session>``,
``translation.<lang>.<session>`` and so on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LANGUAGE_PATTERN",
    "SESSION_ID_PATTERN",
    "InvalidSubjectError",
    "ParsedSubject",
    "analytics",
    "audio_ingest",
    "audio_speech",
    "dead_letter",
    "parse",
    "speaker",
    "transcript",
    "translation",
    "vad",
    "validate_language",
    "validate_session_id",
]

SESSION_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A session id is one subject token: no dots, spaces or wildcards."""

LANGUAGE_PATTERN: Final = re.compile(r"^[a-z]{2,3}$")


class InvalidSubjectError(ValueError):
    """A session id, language code or subject does not fit the naming rules."""


def validate_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise InvalidSubjectError(
            f"session id must be 1-64 characters of letters, digits, '_' or '-'; got {session_id!r}"
        )
    return session_id


def validate_language(language: str) -> str:
    if not LANGUAGE_PATTERN.fullmatch(language):
        raise InvalidSubjectError(
            f"language must be a lower-case ISO 639 code such as 'pt'; got {language!r}"
        )
    return language


def audio_ingest(session_id: str) -> str:
    return f"audio.ingest.{validate_session_id(session_id)}"


def audio_speech(session_id: str) -> str:
    return f"audio.speech.{validate_session_id(session_id)}"


def vad(session_id: str) -> str:
    return f"vad.{validate_session_id(session_id)}"


def transcript(kind: str, session_id: str) -> str:
    if kind not in ("partial", "final"):
        raise InvalidSubjectError(f"transcript kind must be partial or final; got {kind!r}")
    return f"transcript.{kind}.{validate_session_id(session_id)}"


def translation(language: str, session_id: str) -> str:
    return f"translation.{validate_language(language)}.{validate_session_id(session_id)}"


def speaker(session_id: str) -> str:
    return f"speaker.{validate_session_id(session_id)}"


def analytics(session_id: str) -> str:
    return f"analytics.{validate_session_id(session_id)}"


def dead_letter(stage: str, session_id: str | None) -> str:
    """Where a stage puts what it cannot process; ``_`` when no session is known."""
    token = session_id if session_id and SESSION_ID_PATTERN.fullmatch(session_id) else "_"
    return f"deadletter.{stage}.{token}"


@dataclass(frozen=True)
class ParsedSubject:
    """The parts of a pipeline subject: its family, an optional qualifier, the session."""

    family: str
    qualifier: str | None
    session_id: str


_SHAPES: Final = {
    ("audio", 3): "audio",
    ("vad", 2): "vad",
    ("transcript", 3): "transcript",
    ("translation", 3): "translation",
    ("speaker", 2): "speaker",
    ("analytics", 2): "analytics",
    ("deadletter", 3): "deadletter",
}


def parse(subject: str) -> ParsedSubject:
    """Split a pipeline subject into family, qualifier and session id."""
    tokens = subject.split(".")
    family = _SHAPES.get((tokens[0], len(tokens)))
    if family is None:
        raise InvalidSubjectError(f"not a LiveTranslate subject: {subject!r}")
    session_id = validate_session_id(tokens[-1])
    qualifier = tokens[1] if len(tokens) == 3 else None
    return ParsedSubject(family=family, qualifier=qualifier, session_id=session_id)
