"""An edge on the test broker, served on a free port, for the tests that talk to one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from livetranslate.edge import EdgeSettings, create_app, serving

GRACE_S = 1.0
"""A short grace period, so tests of a dropped microphone finish quickly."""


@pytest_asyncio.fixture
async def edge(nats_url: str) -> AsyncIterator[str]:
    """An edge with the defaults but a short grace period; yields ``host:port``."""
    settings = EdgeSettings(open_sessions="auto", publisher_grace_s=GRACE_S)
    async with serving(create_app(nats_url, settings=settings)) as address:
        yield address


@pytest_asyncio.fixture
async def closed_edge(nats_url: str) -> AsyncIterator[str]:
    """An edge that serves only sessions created through it."""
    settings = EdgeSettings(open_sessions="false", publisher_grace_s=GRACE_S)
    async with serving(create_app(nats_url, settings=settings)) as address:
        yield address


@pytest.fixture
def session_id() -> str:
    return f"edge-{uuid.uuid4().hex[:12]}"
