"""``/metrics``: what the edge counts, read back the way Prometheus would."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from livetranslate.contracts import encode, subjects, v1
from livetranslate.edge.testing import connected, create_session, receive, refusal, socket_url

pytestmark = pytest.mark.broker

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(address: str) -> Samples:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"http://{address}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def publish_final(client: Client, session_id: str) -> None:
    final = v1.Transcript(
        session_id=session_id,
        utterance_id="u1",
        kind="final",
        revision=0,
        text="hello",
        start_s=0.0,
        end_s=1.0,
    )
    body, headers = encode(final)
    await client.jetstream().publish(
        subjects.transcript("final", session_id), body, headers=headers
    )


async def test_metrics_count_sockets_frames_refusals_and_latency(
    edge: str, nats_client: Client
) -> None:
    created = await create_session(edge)
    session_id = created["session_id"]
    view_url = socket_url(edge, session_id, token=created["view_token"])
    audio_url = socket_url(edge, session_id, token=created["publish_token"], audio=True)
    await refusal(socket_url(edge, session_id, token="wrong"))

    async with connected(view_url) as viewer, connected(audio_url) as microphone:
        await microphone.send(b"\x00\x00" * 320)
        await microphone.send(b"\x00\x00" * 320)
        await asyncio.sleep(0.3)
        await publish_final(nats_client, session_id)
        await receive(viewer, 1)
        await asyncio.sleep(0.1)
        during = await scrape(edge)
    await asyncio.sleep(0.3)
    after = await scrape(edge)

    transcript = (("contract", "transcript"),)
    assert during[("livetranslate_edge_viewers", ())] == 1
    assert during[("livetranslate_edge_publishers", ())] == 1
    assert during[("livetranslate_edge_audio_frames_total", ())] == 2
    assert during[("livetranslate_edge_sessions_created_total", ())] == 1
    assert during[("livetranslate_edge_frames_sent_total", transcript)] == 1
    assert during[("livetranslate_edge_publish_to_client_seconds_count", transcript)] == 1
    assert during[("livetranslate_edge_publish_to_client_seconds_sum", transcript)] < 1.0
    refused = (("endpoint", "view"), ("reason", "token_wrong"))
    assert during[("livetranslate_edge_sockets_refused_total", refused)] == 1
    assert during[("livetranslate_edge_partials_dropped_total", ())] == 0
    assert after[("livetranslate_edge_viewers", ())] == 0
    assert after[("livetranslate_edge_publishers", ())] == 0


async def test_history_sent_to_a_new_viewer_is_not_a_latency_figure(
    edge: str, nats_client: Client
) -> None:
    created = await create_session(edge)
    session_id = created["session_id"]
    await publish_final(nats_client, session_id)

    async with connected(socket_url(edge, session_id, token=created["view_token"])) as viewer:
        await receive(viewer, 1)
        samples = await scrape(edge)

    transcript = (("contract", "transcript"),)
    assert samples[("livetranslate_edge_frames_sent_total", transcript)] == 1
    assert samples.get(("livetranslate_edge_publish_to_client_seconds_count", transcript), 0) == 0
