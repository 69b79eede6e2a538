"""What the edge's endpoints share: the broker link, settings, metrics, microphone slots."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client
from starlette.types import Scope

from livetranslate.edge.access import AccessStore
from livetranslate.edge.audio import PublisherSlots
from livetranslate.edge.broker import BrokerLink
from livetranslate.edge.hub import Hubs
from livetranslate.edge.metrics import EdgeMetrics
from livetranslate.edge.settings import EdgeSettings

__all__ = ["BROKER_WAIT_S", "EdgeContext"]

BROKER_WAIT_S = 5.0
"""How long a request that arrives before the broker connection waits for it."""


@dataclass
class EdgeContext:
    """One edge's shared state; endpoints get it, never globals."""

    broker: BrokerLink
    settings: EdgeSettings
    web_dir: Path
    metrics: EdgeMetrics = field(default_factory=EdgeMetrics)
    publishers: PublisherSlots = field(init=False)
    _access: AccessStore | None = field(default=None, init=False)
    _hubs: Hubs | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.publishers = PublisherSlots(self.settings.publisher_grace_s)

    async def client(self) -> Client | None:
        """The connected broker client, or None when it does not connect in time."""
        return await self.broker.wait(BROKER_WAIT_S)

    def access(self, client: Client) -> AccessStore:
        if self._access is None:
            self._access = AccessStore(client)
        return self._access

    def hubs(self, client: Client) -> Hubs:
        if self._hubs is None:
            self._hubs = Hubs(client.jetstream())
        return self._hubs

    async def close(self) -> None:
        """Stop what runs in the background; the broker connection goes last."""
        await self.publishers.close()
        if self._hubs is not None:
            await self._hubs.close()
        await self.broker.close()

    def opens_sessions_to(self, scope: Scope) -> bool:
        """Whether a session with no access record may be watched without a token here."""
        setting = self.settings.open_sessions
        if setting == "auto":
            return _arrived_on_loopback(scope)
        return setting == "true"


def _arrived_on_loopback(scope: Scope) -> bool:
    # ``server`` is the local address the connection came in on: 127.0.0.1
    # for an edge bound to loopback, the public address for a remote browser.
    server = scope.get("server")
    if not server:
        return False
    try:
        return ipaddress.ip_address(server[0]).is_loopback
    except ValueError:
        return False
