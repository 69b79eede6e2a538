"""A stage's consumer on a real broker: acks, retries, dead letters, kept messages."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import nats
import pytest
import pytest_asyncio
from faststream.nats import NatsRouter
from nats.aio.client import Client

from livetranslate.contracts import decode_as, encode, subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Delivery, Kept, Publisher, Rejected, StageRunner
from livetranslate.streams.apply import consumer_config
from livetranslate.streams.delivery import consume
from livetranslate.streams.server import EmbeddedServer
from livetranslate.streams.topology import CONSUMERS, ConsumerSpec

pytestmark = pytest.mark.broker


class RecordingStage:
    """Consumes audio.ingest like the VAD does, and records or fails on demand."""

    name = "probe"

    def __init__(self, failures: int = 0) -> None:
        self.seen: list[v1.Contract] = []
        self.failures = failures

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        from livetranslate.streams.delivery import consume

        consume(router, "vad", self.name, lambda: publisher, self.handle)

    async def handle(self, decoded: Decoded, subject: str) -> None:
        if isinstance(decoded.contract, v1.SessionEvent) and decoded.contract.kind == "end":
            raise Rejected("end markers are refused by this probe")
        if self.failures:
            self.failures -= 1
            raise RuntimeError("transient")
        self.seen.append(decoded.contract)

    async def start(self, sessions: object) -> None:
        pass

    async def stop(self) -> None:
        pass


async def _dead_letters(client: Client, session_id: str, count: int) -> list[v1.DeadLetter]:
    sub = await client.jetstream().subscribe(f"deadletter.*.{session_id}", ordered_consumer=True)
    letters = []
    for _ in range(count):
        msg = await sub.next_msg(timeout=10)
        letters.append(decode_as(v1.DeadLetter, msg.headers, msg.data))
    await sub.unsubscribe()
    return letters


async def _publish_start(client: Client, session_id: str) -> None:
    body, headers = encode(v1.SessionEvent(session_id=session_id, kind="start"))
    await client.jetstream().publish(subjects.audio_ingest(session_id), body, headers=headers)


async def _run(stage: RecordingStage, url: str, until: float = 3.0) -> None:
    runner = StageRunner(url, [stage])
    await runner.start()
    await asyncio.sleep(until)
    await runner.stop()


async def test_valid_message_is_handled_once(nats_url: str, nats_client: Client) -> None:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await _publish_start(nats_client, session_id)
    stage = RecordingStage()
    await _run(stage, nats_url)
    assert [c.session_id for c in stage.seen if hasattr(c, "session_id")].count(session_id) == 1


async def test_malformed_payload_goes_to_dead_letters_and_stage_goes_on(
    nats_url: str, nats_client: Client
) -> None:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    js = nats_client.jetstream()
    subject = subjects.audio_ingest(session_id)
    await js.publish(subject, b"not json", headers={"Lt-Contract": "session_event/v1"})
    await js.publish(subject, b"{}", headers={"Lt-Contract": "session_event/v9"})
    await _publish_start(nats_client, session_id)
    stage = RecordingStage()
    await _run(stage, nats_url)

    letters = await _dead_letters(nats_client, session_id, 2)
    reasons = sorted(letter.reason for letter in letters)
    assert "invalid session_event" in reasons[0]
    assert "unsupported contract version v9" in reasons[1]
    assert any(getattr(c, "session_id", None) == session_id for c in stage.seen)


async def test_transient_failure_is_retried_then_handled(
    nats_url: str, nats_client: Client
) -> None:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await _publish_start(nats_client, session_id)
    stage = RecordingStage(failures=2)
    await _run(stage, nats_url, until=5.0)
    assert [getattr(c, "session_id", None) for c in stage.seen].count(session_id) == 1


async def test_rejected_content_is_dead_lettered_with_reason(
    nats_url: str, nats_client: Client
) -> None:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    body, headers = encode(v1.SessionEvent(session_id=session_id, kind="end"))
    await nats_client.jetstream().publish(subjects.audio_ingest(session_id), body, headers=headers)
    await _run(RecordingStage(), nats_url)
    (letter,) = await _dead_letters(nats_client, session_id, 1)
    assert letter.stage == "probe"
    assert "refused by this probe" in letter.reason
    assert json.loads(__import__("base64").b64decode(letter.payload_b64))["kind"] == "end"


ACK_WAIT_S = 2.0
"""The keeping tests' consumer's ack wait: short, so that a redelivery comes soon."""
ACKED_ON_RETURN, KEPT_THEN_ACKED, KEPT_NEVER_ACKED = 1, 2, 3
"""Labels of the keeping tests' messages, carried as an end marker's ``total_samples``."""


class KeepingStage:
    """Consumes with ``keeping``: keeps the messages whose label it is told to keep."""

    name = "keeper"

    def __init__(self, consumer: str, keep: set[int]) -> None:
        self.consumer = consumer
        self.keep = keep
        self.seen: list[int] = []
        self.kept: dict[int, Kept] = {}

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        consume(router, self.consumer, self.name, lambda: publisher, self.handle, keeping=True)

    async def handle(self, decoded: Decoded, subject: str, delivery: Delivery) -> None:
        assert isinstance(decoded.contract, v1.SessionEvent)
        label = decoded.contract.total_samples
        self.seen.append(label)
        if label in self.keep:
            self.kept[label] = delivery.keep()

    async def start(self, sessions: object) -> None:
        pass

    async def stop(self) -> None:
        pass  # what it kept it neither acks nor releases: it goes away


@dataclass(frozen=True)
class Handover:
    """The labels a keeping stage was given, and those the stage after it was given."""

    holder: list[int]
    successor: list[int]


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def handover(nats_server: EmbeddedServer) -> Handover:
    """Three messages to a stage that keeps two and acks one of those after 2 ack waits.

    The stage runs for 3 ack waits in all and goes away; the next stage on the
    same consumer runs until the message never acked comes back, and one more
    ack wait.
    """
    session_id = f"keep-{uuid.uuid4().hex[:8]}"
    spec = ConsumerSpec(
        "AUDIO", session_id, (subjects.audio_ingest(session_id),), ack_wait_s=ACK_WAIT_S
    )
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    await js.add_consumer(spec.stream, consumer_config(spec))
    holder = KeepingStage(spec.durable, keep={KEPT_THEN_ACKED, KEPT_NEVER_ACKED})
    successor = KeepingStage(spec.durable, keep=set())
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(CONSUMERS, spec.durable, spec)
            for label in (ACKED_ON_RETURN, KEPT_THEN_ACKED, KEPT_NEVER_ACKED):
                end = v1.SessionEvent(session_id=session_id, kind="end", total_samples=label)
                body, headers = encode(end)
                await js.publish(subjects.audio_ingest(session_id), body, headers=headers)

            runner = StageRunner(nats_server.url, [holder])
            await runner.start()
            await _until(lambda: len(holder.seen) == 3, timeout_s=10)
            await asyncio.sleep(2 * ACK_WAIT_S)
            await holder.kept[KEPT_THEN_ACKED].ack()
            await asyncio.sleep(ACK_WAIT_S)
            await runner.stop()

            runner = StageRunner(nats_server.url, [successor])
            await runner.start()
            await _until(lambda: KEPT_NEVER_ACKED in successor.seen, timeout_s=3 * ACK_WAIT_S)
            await asyncio.sleep(ACK_WAIT_S)
            await runner.stop()
    finally:
        await js.delete_consumer(spec.stream, spec.durable)
        await client.drain()
    return Handover(holder.seen, successor.seen)


def test_kept_message_is_not_redelivered_while_its_holder_runs(handover: Handover) -> None:
    assert handover.holder == [ACKED_ON_RETURN, KEPT_THEN_ACKED, KEPT_NEVER_ACKED]


def test_kept_message_is_redelivered_once_its_holder_is_gone(handover: Handover) -> None:
    assert KEPT_NEVER_ACKED in handover.successor


def test_acked_messages_are_not_redelivered(handover: Handover) -> None:
    assert handover.successor == [KEPT_NEVER_ACKED]
