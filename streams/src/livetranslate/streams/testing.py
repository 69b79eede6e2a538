"""Pytest fixtures that start a real ``nats-server`` for tests.

Loaded as a plugin by the repository's ``conftest.py``. The server runs on a
free port with a temporary store, one per test session; each test that asks
for ``nats_url`` gets the topology applied and its session ids kept apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from livetranslate.streams.apply import apply_topology
from livetranslate.streams.server import EmbeddedServer

__all__ = ["nats_client", "nats_server", "nats_url"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedServer]:
    server = EmbeddedServer(Path(tmp_path_factory.mktemp("nats-store")))
    await server.start()
    client = await nats.connect(server.url)
    await apply_topology(client)
    await client.close()
    yield server
    await server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedServer) -> str:
    return nats_server.url


@pytest_asyncio.fixture(loop_scope="session")
async def nats_client(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.drain()
