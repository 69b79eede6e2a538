"""History then the shared live feed: no gap and no duplicate across the switch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection

from livetranslate.contracts import encode, subjects, v1
from livetranslate.edge.testing import connected, socket_url

pytestmark = pytest.mark.broker

MESSAGES = 150
PACE_S = 0.004


def event(session_id: str, n: int) -> tuple[str, v1.Contract]:
    """Finals and partials of a made-up session, cycling through the kinds a viewer gets."""
    kind = "final" if n % 3 == 0 else "partial"
    transcript = v1.Transcript(
        session_id=session_id,
        utterance_id=f"u{n // 3}",
        kind=kind,
        revision=n % 3,
        text=f"event {n}",
        start_s=float(n),
        end_s=n + 1.0,
    )
    return subjects.transcript(kind, session_id), transcript


async def publish_steadily(client: Client, session_id: str, seqs: list[int]) -> None:
    js = client.jetstream()
    for n in range(MESSAGES):
        subject, contract = event(session_id, n)
        body, headers = encode(contract)
        seqs.append((await js.publish(subject, body, headers=headers)).seq)
        await asyncio.sleep(PACE_S)


async def read_through(socket: ClientConnection, last_seq: list[int]) -> list[dict[str, Any]]:
    """Frames until the one with the session's last sequence (known once publishing ends)."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not (last_seq and frames and frames[-1]["seq"] >= last_seq[0]):
            try:
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), 0.2)))
            except TimeoutError:
                continue
    return frames


async def watch_from(url: str, last_seq: list[int]) -> list[int]:
    async with connected(url) as socket:
        return [frame["seq"] for frame in await read_through(socket, last_seq)]


async def test_viewers_joining_while_the_session_runs_see_each_event_once_in_order(
    edge: str, nats_client: Client, session_id: str
) -> None:
    seqs: list[int] = []
    last_seq: list[int] = []
    publishing = asyncio.create_task(publish_steadily(nats_client, session_id, seqs))
    watchers = []
    for delay_s, resume in ((0.0, False), (0.1, False), (0.2, True), (0.35, False)):
        await asyncio.sleep(delay_s)
        after = seqs[len(seqs) // 2] if resume and seqs else None
        url = socket_url(edge, session_id, after=after)
        watchers.append((after, asyncio.create_task(watch_from(url, last_seq))))
    await publishing
    last_seq.append(seqs[-1])

    for after, watcher in watchers:
        seen = await asyncio.wait_for(watcher, 20)
        expected = [seq for seq in seqs if after is None or seq > after]
        assert seen == expected
