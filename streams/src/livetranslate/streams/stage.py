"""What every stage is, and how a set of stages runs against one broker."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Protocol

import nats.errors
import structlog
from faststream.nats import NatsBroker, NatsRouter
from nats import micro
from nats.aio.client import Client
from nats.micro.service import Service, ServiceConfig, ServiceVerb, control_subject

from livetranslate.streams.logs import FASTSTREAM_LOGGER
from livetranslate.streams.publishing import Publisher
from livetranslate.streams.sessions import SessionStore

__all__ = ["Stage", "StageRunner", "connect_broker", "running"]

SERVICE_PREFIX = "livetranslate-"
"""Each running stage answers NATS service discovery as ``livetranslate-<stage>``."""
SERVICE_VERSION = "1.0.0"
"""The version the stages announce (service discovery wants semantic versions)."""
DISCOVERY_WAIT_S = 0.5
"""How long ``running`` collects answers: each comes from a stage's event loop,
which answers between messages even while its models decode on threads."""

log = structlog.get_logger(__name__)


class Stage(Protocol):
    """One pipeline stage: its subscribers, and what it loads and frees."""

    name: str

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        """Register the stage's subscribers; ``publisher`` works once started."""

    async def start(self, sessions: SessionStore) -> None:
        """Load models and start background work; called before consuming."""

    async def stop(self) -> None:
        """Flush and free; called after consuming has stopped."""


def connect_broker(url: str) -> NatsBroker:
    """A broker that keeps reconnecting and does not log every message."""
    return NatsBroker(
        url,
        # nats-py gives up after 60 attempts by default; a stage should not.
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        # FastStream's own lines (one per message, supervisor chatter) go to a
        # logger that `logs.configure` keeps at WARNING.
        logger=logging.getLogger(FASTSTREAM_LOGGER),
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
    )


class StageRunner:
    """Runs stages on one broker connection: bind, start, consume, stop."""

    def __init__(self, url: str, stages: Sequence[Stage]) -> None:
        self.broker = connect_broker(url)
        self.publisher = Publisher(self.broker)
        self.stages = list(stages)
        self._services: list[Service] = []
        """Each stage's answer to service discovery, while it consumes."""
        for stage in self.stages:
            router = NatsRouter()
            stage.bind(router, self.publisher)
            self.broker.include_router(router)

    async def start(self) -> None:
        client = await self.broker.connect()
        self.sessions = SessionStore(client)
        await self.sessions.open(watch=True)
        for stage in self.stages:
            await stage.start(self.sessions)
            log.info("stage.started", stage=stage.name)
        await self.broker.start()
        self._services.extend([await _announce(client, stage.name) for stage in self.stages])

    async def stop(self) -> None:
        for service in self._services:
            await service.stop()
        self._services.clear()
        await self.broker.stop()
        for stage in reversed(self.stages):
            await stage.stop()
            log.info("stage.stopped", stage=stage.name)
        await self.sessions.close()

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


async def _announce(client: Client, stage: str) -> Service:
    """Answer service discovery for ``stage`` while it consumes."""
    config = ServiceConfig(
        name=f"{SERVICE_PREFIX}{stage}",
        version=SERVICE_VERSION,
        description=f"LiveTranslate {stage} stage",
    )
    return await micro.add_service(client, config)


async def running(client: Client, stages: Sequence[str]) -> set[str]:
    """Those of ``stages`` that some process on ``client``'s broker runs now."""
    found: set[str] = set()
    inbox = client.new_inbox()
    subscription = await client.subscribe(inbox)
    try:
        for stage in stages:
            ping = control_subject(ServiceVerb.PING, f"{SERVICE_PREFIX}{stage}")
            await client.publish(ping, b"", reply=inbox)
        await client.flush()
        deadline = asyncio.get_running_loop().time() + DISCOVERY_WAIT_S
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                reply = await subscription.next_msg(timeout=left)
            except nats.errors.TimeoutError:
                break
            if not reply.data:
                continue  # the broker's "no responders" for a stage nobody runs
            name = json.loads(reply.data).get("name", "")
            found.add(name.removeprefix(SERVICE_PREFIX))
    finally:
        await subscription.unsubscribe()
    return found & set(stages)
