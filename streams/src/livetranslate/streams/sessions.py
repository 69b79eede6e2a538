"""Session configs in the KV bucket: written by whoever starts a session, read by stages.

Stages keep a local copy that a KV watch keeps current, so a change made
while a session runs (a new target language, say) applies from the next
message on, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from livetranslate.contracts import v1
from livetranslate.streams.topology import SESSIONS_BUCKET

__all__ = ["SessionStore"]

log = structlog.get_logger(__name__)


class SessionStore:
    """Reads and writes ``SessionConfig`` documents, with a watched local cache."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._kv: KeyValue | None = None
        self._cache: dict[str, v1.SessionConfig] = {}
        self._watch_task: asyncio.Task[None] | None = None

    async def open(self, watch: bool = False) -> None:
        self._kv = await self._client.jetstream().key_value(SESSIONS_BUCKET)
        if watch:
            self._watch_task = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watch_task:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task

    async def put(self, config: v1.SessionConfig) -> None:
        await self._bucket().put(config.session_id, config.model_dump_json().encode())
        self._cache[config.session_id] = config

    async def get(self, session_id: str) -> v1.SessionConfig:
        """The session's config; a default one when nobody configured it."""
        cached = self._cache.get(session_id)
        if cached is not None:
            return cached
        try:
            entry = await self._bucket().get(session_id)
        except KeyNotFoundError:
            return v1.SessionConfig(session_id=session_id)
        config = v1.SessionConfig.model_validate_json(entry.value or b"{}")
        self._cache[session_id] = config
        return config

    def forget(self, session_id: str) -> None:
        self._cache.pop(session_id, None)

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("SessionStore.open() was not awaited")
        return self._kv

    async def _watch(self) -> None:
        watcher = await self._bucket().watchall(include_history=False)
        async for entry in watcher:
            if entry is None or entry.value is None:
                continue
            try:
                config = v1.SessionConfig.model_validate_json(entry.value)
            except ValueError as exc:
                log.warning("session_config.invalid", key=entry.key, error=str(exc))
                continue
            self._cache[config.session_id] = config
            log.info("session_config.changed", session_id=config.session_id)
