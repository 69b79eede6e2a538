"""The edge end to end: a real broker, a real uvicorn server, a real WebSocket client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import httpx
import pytest
import pytest_asyncio
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection

from livetranslate.contracts import encode, subjects, v1
from livetranslate.edge import context as edge_context
from livetranslate.edge import create_app, serving
from livetranslate.edge.testing import connected, receive, refusal, socket_url
from livetranslate.streams.server import EmbeddedServer, free_port

pytestmark = pytest.mark.broker

QUIET_S = 0.5
"""How long a socket must stay silent for a test to say nothing more came."""

Kind = Literal["partial", "final"]


@pytest_asyncio.fixture
async def bare_broker(tmp_path: Path) -> AsyncIterator[str]:
    """A broker on which no topology was applied."""
    server = EmbeddedServer(tmp_path / "bare")
    await server.start()
    yield server.url
    await server.stop()


def transcript(
    session_id: str, utterance: str, kind: Kind, revision: int, text: str
) -> v1.Transcript:
    return v1.Transcript(
        session_id=session_id,
        utterance_id=utterance,
        kind=kind,
        revision=revision,
        text=text,
        start_s=0.0,
        end_s=1.0,
    )


def translation(session_id: str, utterance: str, text: str) -> v1.Translation:
    return v1.Translation(
        session_id=session_id,
        utterance_ids=(utterance,),
        source_language="en",
        target_language="pt",
        source_text="hello",
        text=text,
        engine="test",
    )


def subject_of(contract: v1.Contract) -> str:
    if isinstance(contract, v1.Transcript):
        return subjects.transcript(contract.kind, contract.session_id)
    if isinstance(contract, v1.Translation):
        return subjects.translation(contract.target_language, contract.session_id)
    if isinstance(contract, v1.SpeakerTurn):
        return subjects.speaker(contract.session_id)
    if isinstance(contract, v1.AnalyticsSnapshot):
        return subjects.analytics(contract.session_id)
    raise TypeError(f"no subject for {contract.CONTRACT_NAME} in these tests")


async def publish(client: Client, contract: v1.Contract) -> int:
    """Publish to JetStream; returns the stream sequence it got."""
    body, headers = encode(contract)
    ack = await client.jetstream().publish(subject_of(contract), body, headers=headers)
    return ack.seq


async def publish_hello(client: Client, session_id: str) -> list[int]:
    """A partial, its final and the final's translation."""
    return [
        await publish(client, transcript(session_id, "u1", "partial", 0, "hel")),
        await publish(client, transcript(session_id, "u1", "final", 1, "hello")),
        await publish(client, translation(session_id, "u1", "olá")),
    ]


async def assert_quiet(socket: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(socket.recv(), QUIET_S)
        pytest.fail(f"unexpected frame: {extra!r}")


async def test_history_arrives_in_order_then_live_without_duplicates(
    edge: str, nats_client: Client, session_id: str
) -> None:
    seqs = await publish_hello(nats_client, session_id)

    async with connected(socket_url(edge, session_id)) as socket:
        history = await receive(socket, 3)
        live_seq = await publish(nats_client, transcript(session_id, "u2", "final", 0, "bye"))
        live = await receive(socket, 1)
        await assert_quiet(socket)

    assert [frame["seq"] for frame in history + live] == [*seqs, live_seq]
    assert [frame["contract"] for frame in history] == ["transcript", "transcript", "translation"]
    assert [frame["data"]["kind"] for frame in history] == ["partial", "final", "final"]
    assert history[2]["data"]["text"] == "olá"
    assert live[0]["subject"] == f"transcript.final.{session_id}"
    assert live[0]["version"] == 1


async def test_resuming_after_a_sequence_gives_only_later_events(
    edge: str, nats_client: Client, session_id: str
) -> None:
    seqs = await publish_hello(nats_client, session_id)

    async with connected(socket_url(edge, session_id, after=seqs[1])) as socket:
        frames = await receive(socket, 1)
        await assert_quiet(socket)

    assert [frame["seq"] for frame in frames] == [seqs[2]]


async def test_speaker_turns_and_analytics_are_delivered_too(
    edge: str, nats_client: Client, session_id: str
) -> None:
    turn = v1.SpeakerTurn(
        session_id=session_id, utterance_id="u1", speaker="S1", start_s=0.0, end_s=1.0
    )
    snapshot = v1.AnalyticsSnapshot(
        session_id=session_id,
        final=False,
        speech_s=1.0,
        utterances=1,
        words=2,
        words_per_minute=120.0,
    )
    await publish(nats_client, turn)
    await publish(nats_client, snapshot)

    async with connected(socket_url(edge, session_id)) as socket:
        frames = await receive(socket, 2)

    assert [frame["contract"] for frame in frames] == ["speaker_turn", "analytics_snapshot"]
    assert frames[0]["data"]["speaker"] == "S1"


async def test_other_sessions_are_not_delivered(
    edge: str, nats_client: Client, session_id: str
) -> None:
    await publish_hello(nats_client, f"{session_id}-other")
    await publish_hello(nats_client, f"x{session_id}")
    mine = await publish(nats_client, transcript(session_id, "u1", "final", 0, "mine"))

    async with connected(socket_url(edge, session_id)) as socket:
        frames = await receive(socket, 1)
        await assert_quiet(socket)

    assert [frame["seq"] for frame in frames] == [mine]
    assert frames[0]["data"]["session_id"] == session_id


async def test_a_message_that_is_not_a_contract_is_skipped(
    edge: str, nats_client: Client, session_id: str
) -> None:
    await nats_client.jetstream().publish(f"transcript.final.{session_id}", b"not json")
    good = await publish(nats_client, transcript(session_id, "u1", "final", 0, "fine"))

    async with connected(socket_url(edge, session_id)) as socket:
        frames = await receive(socket, 1)

    assert [frame["seq"] for frame in frames] == [good]


@pytest.mark.parametrize(
    ("path", "after"),
    [("bad.id", None), ("has%20space", None), ("ok", "-1"), ("ok", "abc")],
)
async def test_an_invalid_request_is_closed_with_policy_violation(
    edge: str, path: str, after: str | None
) -> None:
    close = await refusal(socket_url(edge, path, after=after))

    assert close.code == 1008
    assert close.reason


async def test_a_session_id_with_a_trailing_newline_is_refused(edge: str) -> None:
    assert (await refusal(socket_url(edge, "abc%0A"))).code == 1008


async def test_healthz_says_ok(edge: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"http://{edge}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_broker_and_stream(edge: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(100):
            response = await http.get(f"http://{edge}/readyz")
            if response.status_code == 200:
                break
            await asyncio.sleep(0.05)

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_is_unavailable_without_broker() -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    async with (
        serving(create_app(nowhere)) as address,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        response = await http.get(f"http://{address}/readyz")

    assert response.status_code == 503
    assert "not connected" in response.json()["reason"]


async def test_readyz_names_a_missing_stream(bare_broker: str) -> None:
    async with (
        serving(create_app(bare_broker)) as address,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        for _ in range(100):
            response = await http.get(f"http://{address}/readyz")
            if "RESULTS" in response.json()["reason"]:
                break
            await asyncio.sleep(0.05)

    assert response.status_code == 503
    assert "RESULTS does not exist" in response.json()["reason"]


async def test_a_socket_is_closed_with_internal_error_when_the_stream_is_missing(
    bare_broker: str,
) -> None:
    async with serving(create_app(bare_broker)) as address:
        assert (await refusal(socket_url(address, "s1"))).code == 1011


async def test_a_socket_is_told_to_retry_when_the_broker_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge_context, "BROKER_WAIT_S", 0.2)
    nowhere = f"nats://127.0.0.1:{free_port()}"
    async with serving(create_app(nowhere)) as address:
        assert (await refusal(socket_url(address, "s1"))).code == 1013


async def test_index_serves_the_caption_page(edge: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        page = await http.get(f"http://{edge}/")
        script = await http.get(f"http://{edge}/static/app.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="captions"' in page.text
    assert 'aria-live="polite"' in page.text
    assert script.status_code == 200
