"""One live feed per watched session on this edge, shared by all of its viewers.

A hub follows its session from the stream's end at the moment it starts,
decodes each message once and offers the frame to every viewer, without
ever waiting for one. With 200 viewers on a session, one consumer per
viewer cost the edge about 0.2 ms of CPU per viewer per message (nats-py's
per-message work and the decoding, 200 times over); the hub does that work
once. History, and a viewer that has fallen behind, are served by the
viewer's own consumer instead (``feed.SessionFeed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from livetranslate.contracts import ContractError
from livetranslate.edge.backlog import Frame
from livetranslate.edge.feed import HEARTBEAT_S, frame_for, session_subjects
from livetranslate.streams.topology import RESULTS

__all__ = ["Hubs", "Listener", "SessionHub"]

log = structlog.get_logger(__name__)

Listener = Callable[[Frame], None]
"""Takes a live frame; must not wait (it runs in the hub's delivery)."""


class SessionHub:
    """An ordered consumer on one session from ``start_seq`` on, fanned out to listeners."""

    def __init__(self, js: JetStreamContext, session_id: str) -> None:
        self.session_id = session_id
        self.start_seq = 0
        """Every message of the session from this stream sequence on passes through the hub."""

        self.listeners: set[Listener] = set()
        self._js = js
        self._last_seq = 0
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def start(self) -> None:
        info = await self._js.stream_info(RESULTS.name)
        self.start_seq = info.state.last_seq + 1
        self._last_seq = self.start_seq - 1
        config = api.ConsumerConfig(
            filter_subjects=session_subjects(self.session_id),
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.start_seq,
        )
        self._subscription = await self._js.subscribe(
            session_subjects(self.session_id)[0],
            stream=RESULTS.name,
            config=config,
            ordered_consumer=True,
            idle_heartbeat=HEARTBEAT_S,
            cb=self._on_message,
        )

    async def stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        # A consumer nats-py recreates (after a broker restart) starts again
        # past the last message it saw, or from the stream's first if none.
        if seq <= self._last_seq:
            return
        self._last_seq = seq
        try:
            frame = frame_for(msg.subject, seq, msg.headers, msg.data, live=True)
        except ContractError as exc:
            log.warning("edge.message_skipped", subject=msg.subject, seq=seq, reason=str(exc))
            return
        for listener in list(self.listeners):
            listener(frame)


class Hubs:
    """The hubs of one edge: started with a session's first viewer, stopped with its last."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._hubs: dict[str, SessionHub] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._hubs)

    async def join(self, session_id: str, listener: Listener) -> SessionHub:
        """The session's hub, started if needed, with ``listener`` hearing its frames."""
        async with self._lock:
            hub = self._hubs.get(session_id)
            if hub is None:
                hub = SessionHub(self._js, session_id)
                await hub.start()
                self._hubs[session_id] = hub
                log.info("edge.hub_started", session_id=session_id, start_seq=hub.start_seq)
            hub.listeners.add(listener)
            return hub

    async def leave(self, session_id: str, listener: Listener) -> None:
        async with self._lock:
            hub = self._hubs.get(session_id)
            if hub is None:
                return
            hub.listeners.discard(listener)
            if not hub.listeners:
                del self._hubs[session_id]
                await hub.stop()
                log.info("edge.hub_stopped", session_id=session_id)

    async def close(self) -> None:
        async with self._lock:
            hubs, self._hubs = list(self._hubs.values()), {}
            for hub in hubs:
                await hub.stop()
