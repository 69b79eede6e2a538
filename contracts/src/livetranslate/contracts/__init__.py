"""Versioned message contracts of LiveTranslate, with their subjects and headers."""

from livetranslate.contracts import envelope, headers, subjects, v1
from livetranslate.contracts.envelope import (
    ContractError,
    decode,
    decode_as,
    encode,
    encode_audio,
)

__all__ = [
    "ContractError",
    "decode",
    "decode_as",
    "encode",
    "encode_audio",
    "envelope",
    "headers",
    "subjects",
    "v1",
]
