"""Who may publish to and watch a session: two random tokens, stored only as hashes.

A session created through the edge gets a *publish token* (send its
microphone audio; also lets its holder watch) and a *view token* (watch
only). The KV bucket ``session_access`` keeps their SHA-256 digests under
the session id, so reading the bucket does not reveal a token.

A session with no access record was started without the edge (``livetranslate
publish``, an integrator publishing straight to the broker). Nobody can
publish to it through the edge; whether it may be watched without a token is
the caller's choice (``open_session``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from livetranslate.contracts import v1
from livetranslate.streams.topology import ACCESS_BUCKET

__all__ = [
    "AccessDeniedError",
    "AccessRecord",
    "AccessStore",
    "IssuedTokens",
    "Role",
    "check",
    "issue",
    "new_session_id",
    "token_digest",
]

SESSION_ID_BYTES = 12
"""16 URL-safe characters: one subject token, and not guessable."""

TOKEN_BYTES = 32


class Role(StrEnum):
    PUBLISH = "publish"
    VIEW = "view"


class AccessDeniedError(Exception):
    """A socket's token does not let it do what it asked; the text goes to the browser."""

    def __init__(self, reason: str, *, missing: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing
        """True when no token came at all, False when a wrong one did."""


class AccessRecord(BaseModel):
    """The hashes of one session's tokens, as stored in the bucket."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: str
    publish_sha256: str = Field(description="Hex SHA-256 of the publish token.")
    view_sha256: str = Field(description="Hex SHA-256 of the view token.")
    created_at: datetime = Field(default_factory=v1.utc_now)


@dataclass(frozen=True)
class IssuedTokens:
    """The tokens themselves: handed to the session's creator once, never stored."""

    session_id: str
    publish_token: str
    view_token: str


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session_id: str) -> tuple[AccessRecord, IssuedTokens]:
    """Fresh tokens for ``session_id`` and the record that checks them."""
    tokens = IssuedTokens(
        session_id=session_id,
        publish_token=secrets.token_urlsafe(TOKEN_BYTES),
        view_token=secrets.token_urlsafe(TOKEN_BYTES),
    )
    record = AccessRecord(
        session_id=session_id,
        publish_sha256=token_digest(tokens.publish_token),
        view_sha256=token_digest(tokens.view_token),
    )
    return record, tokens


def check(
    session_id: str,
    record: AccessRecord | None,
    token: str | None,
    role: Role,
    *,
    open_session: bool = False,
) -> None:
    """Raise AccessDeniedError unless ``token`` allows ``role`` on ``session_id``.

    The reason given is the same whether the session exists or not, so a
    refusal tells a stranger nothing about which session ids are in use.
    """
    if record is None and role is Role.VIEW and open_session:
        return
    if not token:
        raise AccessDeniedError(
            f"session {session_id} needs its {role} token (?token=)", missing=True
        )
    if record is None or not _allows(record, token_digest(token), role):
        raise AccessDeniedError(f"token not valid to {role} session {session_id}", missing=False)


def _allows(record: AccessRecord, digest: str, role: Role) -> bool:
    # Both comparisons always run, in constant time, whichever matches.
    publishes = hmac.compare_digest(digest, record.publish_sha256)
    views = hmac.compare_digest(digest, record.view_sha256)
    return publishes or (role is Role.VIEW and views)


class AccessStore:
    """Access records in the ``session_access`` bucket, opened on first use."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._kv: KeyValue | None = None

    async def create(self, record: AccessRecord) -> None:
        """Store a new session's record; KeyWrongLastSequenceError if it exists already."""
        bucket = await self._bucket()
        await bucket.create(record.session_id, record.model_dump_json().encode())

    async def get(self, session_id: str) -> AccessRecord | None:
        """The session's record, or None when the edge did not create the session."""
        bucket = await self._bucket()
        try:
            entry = await bucket.get(session_id)
        except KeyNotFoundError:
            return None
        return AccessRecord.model_validate_json(entry.value or b"{}")

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._client.jetstream().key_value(ACCESS_BUCKET)
        return self._kv
