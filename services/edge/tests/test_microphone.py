"""The microphone socket: frames become chunks on audio.ingest.<session>, in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import nats.errors
import pytest
from nats.aio.client import Client

from livetranslate.contracts import decode, headers, subjects, v1
from livetranslate.edge.testing import closed_with, connected, create_session, socket_url

pytestmark = pytest.mark.broker

FRAME_SAMPLES = 320
GRACE_S = 1.0
"""The grace period of the ``edge`` fixture."""
SETTLE_S = 0.2
"""Long enough for the edge to notice a close and act on it."""


@dataclass
class Stored:
    contract: v1.Contract
    pcm: bytes
    msg_id: str | None


def frame(n: int) -> bytes:
    """20 ms of PCM whose samples all equal ``n``, so each frame is recognisable."""
    return n.to_bytes(2, "little", signed=True) * FRAME_SAMPLES


async def stored_audio(client: Client, session_id: str) -> list[Stored]:
    subscription = await client.jetstream().subscribe(
        subjects.audio_ingest(session_id), ordered_consumer=True
    )
    found = []
    try:
        while True:
            try:
                msg = await subscription.next_msg(timeout=0.3)
            except nats.errors.TimeoutError:
                return found
            decoded = decode(msg.headers, msg.data)
            msg_id = (msg.headers or {}).get(headers.MSG_ID)
            found.append(Stored(decoded.contract, decoded.pcm, msg_id))
    finally:
        await subscription.unsubscribe()


def kinds(stored: list[Stored]) -> list[str]:
    return [s.contract.kind if isinstance(s.contract, v1.SessionEvent) else "chunk" for s in stored]


def chunks(stored: list[Stored]) -> list[v1.AudioChunkMeta]:
    return [s.contract for s in stored if isinstance(s.contract, v1.AudioChunkMeta)]


async def microphone_url(edge: str) -> tuple[str, str]:
    created = await create_session(edge)
    url = socket_url(edge, created["session_id"], token=created["publish_token"], audio=True)
    return created["session_id"], url


async def send_frames(url: str, numbers: range, close_code: int = 1000) -> None:
    async with connected(url) as socket:
        for n in numbers:
            await socket.send(frame(n))
        await socket.close(code=close_code)
    await asyncio.sleep(SETTLE_S)


async def test_frames_arrive_in_order_between_start_and_end_markers(
    edge: str, nats_client: Client
) -> None:
    session_id, url = await microphone_url(edge)

    await send_frames(url, range(1, 6))

    stored = await stored_audio(nats_client, session_id)
    assert kinds(stored) == ["start", "chunk", "chunk", "chunk", "chunk", "chunk", "end"]
    metas = chunks(stored)
    assert [m.seq for m in metas] == [0, 1, 2, 3, 4]
    assert [m.offset_samples for m in metas] == [0, 320, 640, 960, 1280]
    assert all(m.sample_rate_hz == 16000 and m.encoding == "s16le" for m in metas)
    assert [s.pcm for s in stored[1:6]] == [frame(n) for n in range(1, 6)]
    assert [s.msg_id for s in stored] == [
        f"{session_id}:start",
        *(f"{session_id}:chunk:{n}" for n in range(5)),
        f"{session_id}:end",
    ]
    end = stored[-1].contract
    assert isinstance(end, v1.SessionEvent)
    assert end.total_samples == 5 * FRAME_SAMPLES


@pytest.mark.parametrize(
    ("bad", "code", "words"),
    [
        (b"\x00" * 641, 1007, "even byte count"),
        (b"\x00" * 3202, 1009, "at most 3200"),
        ("hello", 1003, "binary PCM"),
    ],
)
async def test_a_bad_frame_closes_the_socket_saying_why(
    edge: str, nats_client: Client, bad: bytes | str, code: int, words: str
) -> None:
    session_id, url = await microphone_url(edge)

    async with connected(url) as socket:
        await socket.send(frame(1))
        await socket.send(bad)
        close = await closed_with(socket)

    assert close.code == code
    assert words in close.reason
    assert [m.seq for m in chunks(await stored_audio(nats_client, session_id))] == [0]


async def test_a_socket_that_comes_back_in_time_carries_the_session_on(
    edge: str, nats_client: Client
) -> None:
    session_id, url = await microphone_url(edge)

    await send_frames(url, range(1, 4), close_code=1001)
    await send_frames(url, range(4, 6))

    stored = await stored_audio(nats_client, session_id)
    assert kinds(stored) == ["start", *["chunk"] * 5, "end"]
    assert [m.seq for m in chunks(stored)] == [0, 1, 2, 3, 4]
    assert [m.offset_samples for m in chunks(stored)][3] == 3 * FRAME_SAMPLES


async def test_a_dropped_socket_ends_the_audio_after_the_grace_period(
    edge: str, nats_client: Client
) -> None:
    session_id, url = await microphone_url(edge)
    loop = asyncio.get_running_loop()

    await send_frames(url, range(1, 3), close_code=1001)
    dropped_at = loop.time() - SETTLE_S
    while "end" not in kinds(stored := await stored_audio(nats_client, session_id)):
        assert loop.time() - dropped_at < GRACE_S + 5, "the audio never ended"
    ended_after_s = loop.time() - dropped_at

    assert kinds(stored) == ["start", "chunk", "chunk", "end"]
    assert ended_after_s >= GRACE_S


async def test_a_session_whose_audio_ended_takes_no_more(edge: str) -> None:
    _, url = await microphone_url(edge)
    await send_frames(url, range(1, 2))

    async with connected(url) as socket:
        close = await closed_with(socket)

    assert close.code == 1008
    assert "has ended" in close.reason


async def test_a_newer_socket_takes_over_from_an_older_one(edge: str, nats_client: Client) -> None:
    session_id, url = await microphone_url(edge)

    async with connected(url) as older:
        await older.send(frame(1))
        await asyncio.sleep(SETTLE_S)
        async with connected(url) as newer:
            close = await closed_with(older)
            await newer.send(frame(2))
            await newer.close()
    await asyncio.sleep(SETTLE_S)

    assert close.code == 1008
    assert "replaced" in close.reason
    stored = await stored_audio(nats_client, session_id)
    assert kinds(stored) == ["start", "chunk", "chunk", "end"]
    assert [s.pcm for s in stored[1:3]] == [frame(1), frame(2)]


async def test_a_frame_far_over_the_limit_is_cut_off_before_it_is_buffered(edge: str) -> None:
    _, url = await microphone_url(edge)

    async with connected(url) as socket:
        await socket.send(b"\x00" * 70_000)
        close = await closed_with(socket)

    assert close.code == 1009
