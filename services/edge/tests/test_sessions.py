"""Creating sessions, and who may watch or publish to them: the edge over a real broker."""

from __future__ import annotations

import json

import httpx
import pytest
from nats.aio.client import Client

from livetranslate.contracts import encode, subjects, v1
from livetranslate.edge.access import token_digest
from livetranslate.edge.testing import (
    closed_with,
    connected,
    create_session,
    receive,
    refusal,
    socket_url,
)
from livetranslate.streams.topology import ACCESS_BUCKET, SESSIONS_BUCKET

pytestmark = pytest.mark.broker

PCM_20_MS = b"\x01\x00" * 320


async def publish_final(client: Client, session_id: str, text: str) -> int:
    final = v1.Transcript(
        session_id=session_id,
        utterance_id="u1",
        kind="final",
        revision=0,
        text=text,
        start_s=0.0,
        end_s=1.0,
    )
    body, headers = encode(final)
    subject = subjects.transcript("final", session_id)
    return (await client.jetstream().publish(subject, body, headers=headers)).seq


async def post(address: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await http.post(
            f"http://{address}/api/sessions",
            content=body,
            headers={"Content-Type": "application/json"},
        )


async def test_a_created_session_has_its_config_and_only_token_digests_stored(
    edge: str, nats_client: Client
) -> None:
    created = await create_session(edge, "en", ("pt", "es"))

    session_id = created["session_id"]
    js = nats_client.jetstream()
    config = v1.SessionConfig.model_validate_json(
        (await (await js.key_value(SESSIONS_BUCKET)).get(session_id)).value or b""
    )
    stored = (await (await js.key_value(ACCESS_BUCKET)).get(session_id)).value or b""
    assert subjects.validate_session_id(session_id)
    assert config.source_language == "en"
    assert config.target_languages == ("pt", "es")
    assert created["publish_token"].encode() not in stored
    assert created["view_token"].encode() not in stored
    assert json.loads(stored)["view_sha256"] == token_digest(created["view_token"])
    assert created["view_url"] == (
        f"http://{edge}/?session={session_id}#token={created['view_token']}"
    )


async def test_two_sessions_get_different_ids_and_tokens(edge: str) -> None:
    first, second = await create_session(edge), await create_session(edge)

    assert first["session_id"] != second["session_id"]
    assert {first["publish_token"], first["view_token"]}.isdisjoint(
        {second["publish_token"], second["view_token"]}
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "expected JSON"),
        (b'{"target_languages": ["Portuguese"]}', "target_languages"),
        (b'{"source_language": "EN"}', "source_language"),
        (b'{"session_id": "mine"}', "session_id"),
        (b'{"target_languages": "pt"}', "target_languages"),
    ],
)
async def test_a_malformed_request_is_a_400_that_says_why(
    edge: str, body: bytes, words: str
) -> None:
    response = await post(edge, body)

    assert response.status_code == 400
    assert words in response.json()["error"]


async def test_an_oversized_request_is_a_400(edge: str) -> None:
    response = await post(edge, b" " * 5000)

    assert response.status_code == 400
    assert "at most 4096" in response.json()["error"]


async def test_an_empty_request_makes_a_session_without_translation(edge: str) -> None:
    response = await post(edge, b"")

    assert response.status_code == 201


@pytest.mark.parametrize("which", ["view_token", "publish_token"])
async def test_either_token_lets_its_holder_watch(
    edge: str, nats_client: Client, which: str
) -> None:
    created = await create_session(edge)
    session_id = created["session_id"]
    seq = await publish_final(nats_client, session_id, "hello")

    async with connected(socket_url(edge, session_id, token=created[which])) as socket:
        frames = await receive(socket, 1)

    assert [frame["seq"] for frame in frames] == [seq]


async def test_watching_without_a_token_is_refused(edge: str) -> None:
    created = await create_session(edge)

    close = await refusal(socket_url(edge, created["session_id"]))

    assert close.code == 1008
    assert "needs its view token" in close.reason


async def test_watching_with_a_wrong_token_is_refused(edge: str) -> None:
    created = await create_session(edge)

    close = await refusal(
        socket_url(edge, created["session_id"], token="x" + created["view_token"])
    )

    assert close.code == 1008
    assert "not valid to view" in close.reason


@pytest.mark.parametrize("which", ["view_token", "publish_token"])
async def test_watching_with_another_sessions_token_is_refused(edge: str, which: str) -> None:
    mine, other = await create_session(edge), await create_session(edge)

    close = await refusal(socket_url(edge, mine["session_id"], token=other[which]))

    assert close.code == 1008
    assert "not valid to view" in close.reason


async def test_publishing_without_a_token_is_refused(edge: str) -> None:
    created = await create_session(edge)

    close = await refusal(socket_url(edge, created["session_id"], audio=True))

    assert close.code == 1008
    assert "needs its publish token" in close.reason


@pytest.mark.parametrize("token", ["wrong", "view"])
async def test_publishing_with_a_wrong_or_view_token_is_refused(edge: str, token: str) -> None:
    created = await create_session(edge)
    given = created["view_token"] if token == "view" else "wrong"

    close = await refusal(socket_url(edge, created["session_id"], token=given, audio=True))

    assert close.code == 1008
    assert "not valid to publish" in close.reason


@pytest.mark.parametrize("which", ["view_token", "publish_token"])
async def test_publishing_with_another_sessions_token_is_refused(
    edge: str, nats_client: Client, which: str
) -> None:
    mine, other = await create_session(edge), await create_session(edge)
    url = socket_url(edge, mine["session_id"], token=other[which], audio=True)

    async with connected(url) as socket:
        await socket.send(PCM_20_MS)
        close = await closed_with(socket)

    assert close.code == 1008
    stream = await nats_client.jetstream().stream_info("AUDIO", subjects_filter=">")
    assert subjects.audio_ingest(mine["session_id"]) not in (stream.state.subjects or {})


async def test_publishing_to_a_session_the_edge_did_not_create_is_refused(
    edge: str, session_id: str
) -> None:
    close = await refusal(socket_url(edge, session_id, token="anything", audio=True))

    assert close.code == 1008


async def test_a_session_without_a_record_is_open_to_watch_on_loopback_by_default(
    edge: str, nats_client: Client, session_id: str
) -> None:
    seq = await publish_final(nats_client, session_id, "published without the edge")

    async with connected(socket_url(edge, session_id)) as socket:
        frames = await receive(socket, 1)

    assert frames[0]["seq"] == seq


async def test_a_closed_edge_refuses_to_show_a_session_without_a_record(
    closed_edge: str, nats_client: Client, session_id: str
) -> None:
    await publish_final(nats_client, session_id, "published without the edge")

    for token in (None, "guess"):
        close = await refusal(socket_url(closed_edge, session_id, token=token))
        assert close.code == 1008


async def test_a_closed_edge_still_shows_its_own_sessions(
    closed_edge: str, nats_client: Client
) -> None:
    created = await create_session(closed_edge)
    seq = await publish_final(nats_client, created["session_id"], "hello")

    url = socket_url(closed_edge, created["session_id"], token=created["view_token"])
    async with connected(url) as socket:
        frames = await receive(socket, 1)

    assert frames[0]["seq"] == seq
