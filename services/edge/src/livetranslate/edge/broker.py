"""The edge's one connection to the broker, made in the background.

The edge serves from the moment it starts, broker or not: ``/healthz``
answers, ``/readyz`` says what is missing, and a socket that arrives
early waits a little for the connection instead of failing at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from livetranslate.streams.topology import ACCESS_BUCKET, AUDIO, RESULTS, SESSIONS_BUCKET

__all__ = ["BrokerLink"]

log = structlog.get_logger(__name__)

RECONNECT_WAIT_S = 1
READY_CHECK_TIMEOUT_S = 2.0
CANCEL_RETRY_S = 0.1

NEEDED_STREAMS = (RESULTS.name, AUDIO.name, f"KV_{SESSIONS_BUCKET}", f"KV_{ACCESS_BUCKET}")
"""What the edge reads and writes: results, microphone audio, session configs and access."""


class BrokerLink:
    """Connects to ``url`` until it succeeds, then keeps reconnecting forever."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = Client()
        self._connected = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._erring = False
        self._closing = False

    def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect(), name="edge-broker-connect")

    async def close(self) -> None:
        self._closing = True
        if self._connecting is not None:
            await _cancel(self._connecting)
        if not self._client.is_closed:
            await self._client.close()

    async def wait(self, timeout_s: float) -> Client | None:
        """The connected client, or None when it is not connected within ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        return self._client if self._client.is_connected else None

    async def unready_reason(self) -> str | None:
        """Why the edge cannot serve sessions now, or None when it can."""
        if not self._client.is_connected:
            return f"not connected to the broker at {self.url}"
        js = self._client.jetstream(timeout=READY_CHECK_TIMEOUT_S)
        for stream in NEEDED_STREAMS:
            try:
                await js.stream_info(stream)
            except NotFoundError:
                return f"stream {stream} does not exist; run `livetranslate streams apply`"
            except (TimeoutError, nats.errors.Error) as exc:
                return f"broker did not describe stream {stream}: {exc!r}"
        return None

    async def _connect(self) -> None:
        try:
            await self._client.connect(
                self.url,
                # nats-py gives up after 60 attempts by default; the edge should not.
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_S,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except Exception as exc:
            # Only a malformed URL or options get here; attempts retry forever.
            log.error("edge.broker_unusable", url=self.url, error=repr(exc))
            return
        self._connected.set()
        await self._on_reconnected()

    async def _on_error(self, exc: Exception) -> None:
        # Once per outage: a broker that is down fails every second.
        if not self._erring:
            log.warning("edge.broker_error", url=self.url, error=repr(exc))
        self._erring = True

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("edge.broker_disconnected", url=self.url)

    async def _on_reconnected(self) -> None:
        self._erring = False
        log.info("edge.broker_connected", url=self.url)


async def _cancel(task: asyncio.Task[None]) -> None:
    # nats-py's connect loop swallows a cancellation that lands while it tidies
    # up a failed attempt (Client._close catches CancelledError), and then goes
    # on retrying; asking again once it is back in its back-off sleep works.
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
