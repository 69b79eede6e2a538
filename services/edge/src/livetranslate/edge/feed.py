"""One browser's view of one session: its history, then the session's live hub.

A viewer's own ordered consumer on the RESULTS stream delivers the stored
results from ``after`` on; once it has caught up, the viewer takes live
frames from the session's hub (``hub.SessionHub``), which serves every
viewer of the session on this edge. One cursor, the stream sequence of the
last frame passed on, keeps the browser's view free of gaps and duplicates
across the switch, in stream order.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from livetranslate.contracts import ContractError, decode, headers, subjects, v1
from livetranslate.edge.backlog import Backlog, Frame
from livetranslate.streams.topology import RESULTS

if TYPE_CHECKING:
    from livetranslate.edge.hub import Hubs

__all__ = ["SessionFeed", "consumer_config", "frame_for", "session_subjects"]

log = structlog.get_logger(__name__)

HEARTBEAT_S = 2.0
"""The server's idle heartbeat; two missed ones make nats-py recreate the consumer.

A broker restart loses the ordered consumer (it lives in memory); with the
nats-py default of 5 s a viewer waited about 20 s for results to resume.
"""

HELD_MAX_FRAMES = 2000
"""Live frames held for a viewer while it catches up; past this, it stops holding them
and catches up on its own consumer alone, then starts holding again."""


def session_subjects(session_id: str) -> list[str]:
    """Every RESULTS subject of one session, and no other session's."""
    return [
        f"transcript.*.{session_id}",
        f"translation.*.{session_id}",
        subjects.speaker(session_id),
        subjects.analytics(session_id),
    ]


def consumer_config(session_id: str, after: int) -> api.ConsumerConfig:
    """Start at the beginning of the stream, or just past ``after``."""
    config = api.ConsumerConfig(filter_subjects=session_subjects(session_id))
    if after > 0:
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = after + 1
    else:
        config.deliver_policy = api.DeliverPolicy.ALL
    return config


def frame_for(
    subject: str,
    seq: int,
    msg_headers: Mapping[str, str] | None,
    body: bytes,
    *,
    live: bool = False,
) -> Frame:
    """The browser's frame for one stored message; ContractError when it is not a contract."""
    contract = decode(msg_headers, body).contract
    _, version = headers.split_contract_tag((msg_headers or {})[headers.CONTRACT])
    text = json.dumps(
        {
            "contract": contract.CONTRACT_NAME,
            "version": version,
            "subject": subject,
            "seq": seq,
            "data": contract.model_dump(mode="json"),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Frame(
        seq=seq,
        text=text,
        droppable=_is_partial(contract),
        contract=contract.CONTRACT_NAME,
        published_at_s=_published_at_s(contract),
        live=live,
    )


def _is_partial(contract: v1.Contract) -> bool:
    return isinstance(contract, v1.Transcript | v1.Translation) and contract.kind == "partial"


def _published_at_s(contract: v1.Contract) -> float | None:
    if isinstance(contract, v1.Transcript | v1.Translation):
        return contract.published_at.timestamp()
    return None


class SessionFeed:
    """Feeds one session's results into one browser's backlog until stopped.

    Catching up, the viewer's own consumer puts frames into the backlog and
    waits while it is full of finals: JetStream flow control then holds
    that consumer and nothing else. Meanwhile the hub's frames are *held*.
    Live, the hub offers its frames straight to the backlog, and a final
    that finds it full of finals sends the viewer back to catching up.

    Going live is safe when the held frames continue the consumer's without
    a gap: once the consumer reaches the first held frame, or once it has
    nothing pending and the frames were held since before it started.
    """

    def __init__(
        self, js: JetStreamContext, hubs: Hubs, session_id: str, after: int, backlog: Backlog
    ) -> None:
        self.session_id = session_id
        self.backlog = backlog
        self.after = after
        """The stream sequence the browser asked to resume past."""

        self.last_seq = after
        """Stream sequence of the last frame passed on; nothing at or before it is passed on."""

        self.live = False
        """True while frames come from the hub."""

        self._js = js
        self._hubs = hubs
        self._log = log.bind(session_id=session_id)
        self._held: deque[Frame] | None = deque()
        self._held_before_consumer = False
        self._generation = 0
        self._consumer: JetStreamContext.PushSubscription | None = None
        self._switch = asyncio.Lock()
        self._chores: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Hold the hub's frames from before the consumer starts: the switch needs it.
        await self._hubs.join(self.session_id, self._offer)
        await self._catch_up()

    async def stop(self) -> None:
        # The server deletes an ephemeral consumer about 5 s after its delivery
        # subject loses interest; nothing else to tidy on the broker.
        self._generation += 1
        self.backlog.close()  # releases a delivery waiting for room
        await self._hubs.leave(self.session_id, self._offer)
        self._retire_consumer()
        # A consumer still starting sees the new generation and unsubscribes.
        while self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)

    # ---- the hub's side: never waits -------------------------------------

    def _offer(self, frame: Frame) -> None:
        if self.live:
            if frame.seq <= self.last_seq:
                return
            if self.backlog.offer(frame):
                self.last_seq = frame.seq
                return
            self._fall_behind(frame)
        elif self._held is not None:
            self._held.append(frame)
            if len(self._held) > HELD_MAX_FRAMES:
                self._held, self._held_before_consumer = None, False

    def _fall_behind(self, frame: Frame) -> None:
        self._log.debug("edge.viewer_behind", seq=frame.seq, backlog=len(self.backlog))
        self.live = False
        self._held = deque([frame])
        self._run(self._catch_up())

    # ---- the viewer's own consumer ---------------------------------------

    async def _catch_up(self) -> None:
        """Follow the session from ``last_seq`` on a consumer of this viewer's own."""
        self._retire_consumer()
        self._generation += 1
        generation = self._generation
        self._held_before_consumer = self._held is not None
        subscription = await self._js.subscribe(
            # nats-py wants one subject, but ignores it when the config names
            # filter_subjects: the consumer follows all four.
            session_subjects(self.session_id)[0],
            stream=RESULTS.name,
            config=consumer_config(self.session_id, self.last_seq),
            ordered_consumer=True,
            idle_heartbeat=HEARTBEAT_S,
            cb=self._for(generation),
        )
        if generation != self._generation:
            await subscription.unsubscribe()
            return
        self._consumer = subscription
        # Not awaited: going live may wait for room, and the browser's sender
        # starts only once ``start`` returns.
        self._run(self._live_if_no_history(subscription, generation))

    def _for(self, generation: int) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            async with self._switch:
                if generation == self._generation and not self.live:
                    await self._on_message(msg)

        return on_message

    async def _live_if_no_history(
        self, subscription: JetStreamContext.PushSubscription, generation: int
    ) -> None:
        info = await subscription.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered else 0
        if info.num_pending or delivered or self._switch.locked():
            return  # a message came: its delivery decides when to go live
        async with self._switch:
            if generation == self._generation and not self.live and self._held_before_consumer:
                await self._go_live()

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if self._held and seq >= self._held[0].seq:
            await self._go_live()
            return
        # nats-py restarts an ordered consumer at (last sequence it saw + 1), and
        # counts from 0 rather than from ``after``: a restart before the first
        # message would replay the session from the start. Skipping what the
        # browser already has keeps that from becoming duplicates.
        if seq > self.last_seq:
            await self._pass_on(msg, seq)
        if msg.metadata.num_pending == 0:
            if self._held_before_consumer:
                await self._go_live()
            elif self._held is None:
                # Hold again; the first held frame marks where to switch.
                self._held = deque()

    async def _pass_on(self, msg: Msg, seq: int) -> None:
        self.last_seq = seq
        try:
            frame = frame_for(msg.subject, seq, msg.headers, msg.data)
        except ContractError as exc:
            self._log.warning("edge.message_skipped", subject=msg.subject, seq=seq, reason=str(exc))
            return
        await self.backlog.put(frame)

    async def _go_live(self) -> None:
        while self._held:
            frame = self._held.popleft()
            if frame.seq > self.last_seq:
                await self.backlog.put(frame)
                self.last_seq = frame.seq
        if self._held is None:
            # Too many held while the browser was slow: start over from here.
            self._run(self._catch_up())
            return
        self.live, self._held = True, None
        self._retire_consumer()

    def _retire_consumer(self) -> None:
        # Never from inside the consumer's own callback: unsubscribing cancels
        # the task that runs it.
        subscription, self._consumer = self._consumer, None
        if subscription is not None:
            self._run(subscription.unsubscribe())

    def _run(self, chore: Awaitable[None]) -> None:
        task = asyncio.ensure_future(chore)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
