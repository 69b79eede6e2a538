"""A viewer that stops reading loses partials, never finals, and holds up no one else."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection, connect

from livetranslate.contracts import encode, subjects, v1
from livetranslate.edge import EdgeSettings, create_app, serving
from livetranslate.edge.testing import create_session, socket_url

pytestmark = pytest.mark.broker

UTTERANCES = 40
PARTIALS_PER_UTTERANCE = 30
PARTIAL_TEXT = "word " * 1600
"""8 kB a partial: about 10 MB in all, more than loopback's socket buffers hold."""

RECEIVE_TIMEOUT_S = 20.0


@pytest_asyncio.fixture
async def small_backlog_edge(nats_url: str) -> AsyncIterator[str]:
    settings = EdgeSettings(open_sessions="auto", backlog_frames=8)
    async with serving(create_app(nats_url, settings=settings)) as address:
        yield address


def small_socket(url: str) -> socket.socket:
    address = urlsplit(url)
    connection = socket.socket()
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    connection.connect((address.hostname, address.port))
    connection.setblocking(False)
    return connection


def transcript(session_id: str, utterance: int, revision: int, kind: str) -> v1.Transcript:
    return v1.Transcript(
        session_id=session_id,
        utterance_id=f"u{utterance}",
        kind="final" if kind == "final" else "partial",
        revision=revision,
        text=f"final {utterance}" if kind == "final" else PARTIAL_TEXT,
        start_s=float(utterance),
        end_s=utterance + 1.0,
    )


async def publish_session(client: Client, session_id: str) -> None:
    js = client.jetstream()
    for utterance in range(UTTERANCES):
        acks = []
        for revision in range(PARTIALS_PER_UTTERANCE):
            body, headers = encode(transcript(session_id, utterance, revision, "partial"))
            subject = subjects.transcript("partial", session_id)
            acks.append(await js.publish_async(subject, body, headers=headers))
        body, headers = encode(transcript(session_id, utterance, PARTIALS_PER_UTTERANCE, "final"))
        acks.append(
            await js.publish_async(subjects.transcript("final", session_id), body, headers=headers)
        )
        await asyncio.gather(*acks)


async def read_until_last_final(socket: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    last = f"u{UTTERANCES - 1}"
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT_S))
        frames.append(frame)
        data = frame["data"]
        if data["kind"] == "final" and data["utterance_id"] == last:
            return frames


def finals(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["utterance_id"] for f in frames if f["data"]["kind"] == "final"]


async def test_a_stalled_viewer_loses_partials_not_finals_and_delays_no_one(
    small_backlog_edge: str, nats_client: Client
) -> None:
    created = await create_session(small_backlog_edge)
    url = socket_url(small_backlog_edge, created["session_id"], token=created["view_token"])
    expected = [f"u{n}" for n in range(UTTERANCES)]

    # max_queue=1 and a small receive buffer: the stalled client's socket
    # fills almost at once, and the edge's sends to it block.
    async with (
        connect(url, proxy=None, max_queue=1, max_size=None, sock=small_socket(url)) as stalled,
        connect(url, proxy=None, max_size=None) as reader,
    ):
        reading = asyncio.create_task(read_until_last_final(reader))
        await publish_session(nats_client, created["session_id"])
        prompt = await asyncio.wait_for(reading, RECEIVE_TIMEOUT_S)
        late = await read_until_last_final(stalled)

    assert finals(prompt) == expected
    assert finals(late) == expected
    assert len(late) < UTTERANCES * (PARTIALS_PER_UTTERANCE + 1), "no partial was dropped"
    for frames in (prompt, late):
        seqs = [f["seq"] for f in frames]
        assert seqs == sorted(set(seqs))
