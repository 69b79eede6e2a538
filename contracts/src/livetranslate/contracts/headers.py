"""Header names that travel with every message.

A consumer reads ``Lt-Contract`` before it parses the body, so it can tell
what it got (and reject an unknown version) without guessing.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONTRACT",
    "MSG_ID",
    "SESSION",
    "TRACEPARENT",
    "contract_tag",
    "split_contract_tag",
]

CONTRACT: Final = "Lt-Contract"
"""``<name>/v<version>``, for example ``transcript/v1``."""

SESSION: Final = "Lt-Session"
MSG_ID: Final = "Nats-Msg-Id"
"""JetStream de-duplicates publishes that carry the same id within its window."""

TRACEPARENT: Final = "traceparent"


def contract_tag(name: str, version: int) -> str:
    return f"{name}/v{version}"


def split_contract_tag(tag: str) -> tuple[str, int]:
    """``"transcript/v1"`` -> ``("transcript", 1)``; ValueError when malformed."""
    name, sep, version = tag.partition("/v")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"contract header must look like 'name/v1'; got {tag!r}")
    return name, int(version)
