"""A stage's consumer on a real broker: acks, retries and dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from faststream.nats import NatsRouter
from livetranslate.contracts import decode_as, encode, subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Publisher, Rejected, StageRunner
from nats.aio.client import Client

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
