"""A viewer's feed on a real broker: catching up, going live, falling behind and back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from nats.aio.client import Client

from livetranslate.contracts import encode, subjects, v1
from livetranslate.edge.backlog import Backlog
from livetranslate.edge.feed import SessionFeed
from livetranslate.edge.hub import Hubs

pytestmark = pytest.mark.broker

POLL_S = 0.01


def final(session_id: str, n: int) -> v1.Transcript:
    return v1.Transcript(
        session_id=session_id,
        utterance_id=f"u{n}",
        kind="final",
        revision=0,
        text=f"final {n}",
        start_s=float(n),
        end_s=n + 1.0,
    )


async def publish_finals(client: Client, session_id: str, count: int) -> list[int]:
    js, seqs = client.jetstream(), []
    for n in range(count):
        body, headers = encode(final(session_id, n))
        ack = await js.publish(subjects.transcript("final", session_id), body, headers=headers)
        seqs.append(ack.seq)
    return seqs


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / POLL_S)):
        if condition():
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"still not true after {timeout_s} s")


async def drain(backlog: Backlog, count: int) -> list[int]:
    return [(await asyncio.wait_for(backlog.get(), 5)).seq for _ in range(count)]


async def test_a_viewer_of_an_empty_session_goes_live_at_once(nats_client: Client) -> None:
    session_id = f"feed-{uuid.uuid4().hex[:8]}"
    feed = SessionFeed(
        nats_client.jetstream(), Hubs(nats_client.jetstream()), session_id, 0, Backlog(10)
    )
    await feed.start()
    try:
        await until(lambda: feed.live)
        seqs = await publish_finals(nats_client, session_id, 3)
        frames = [await asyncio.wait_for(feed.backlog.get(), 5) for _ in seqs]
    finally:
        await feed.stop()

    assert [frame.seq for frame in frames] == seqs
    assert all(frame.live for frame in frames)


async def test_a_viewer_that_falls_behind_catches_up_without_loss_and_goes_live_again(
    nats_client: Client,
) -> None:
    session_id = f"feed-{uuid.uuid4().hex[:8]}"
    history = await publish_finals(nats_client, session_id, 5)
    feed = SessionFeed(
        nats_client.jetstream(), Hubs(nats_client.jetstream()), session_id, 0, Backlog(2)
    )
    await feed.start()
    try:
        # Two finals fill the backlog; the catch-up consumer waits for room.
        assert await drain(feed.backlog, 5) == history
        await until(lambda: feed.live)
        burst = await publish_finals(nats_client, session_id, 20)
        await until(lambda: not feed.live)  # a live final found no room
        received = await drain(feed.backlog, 20)
        await until(lambda: feed.live)
        after = await publish_finals(nats_client, session_id, 2)
        received += await drain(feed.backlog, 2)
    finally:
        await feed.stop()

    assert received == burst + after
