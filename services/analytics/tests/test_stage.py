"""The analytics stage on a real broker: speech events, finals and translations in, figures out.

The stage reads three consumers at once, so what it sees first is not fixed by
the order of publishing. A test that needs one thing counted before another
waits until a periodic snapshot shows it, then publishes the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from livetranslate.analytics.stage import AnalyticsSettings, AnalyticsStage
from livetranslate.contracts import decode_as, encode, subjects, v1
from livetranslate.streams import StageRunner
from livetranslate.streams.server import EmbeddedServer

pytestmark = pytest.mark.broker

TIMEOUT_S = 20.0
SETTINGS = AnalyticsSettings(interval_s=0.2)
"""Periodic snapshots often enough for a test to wait on them."""

UTTERANCES = (
    # id, start and end sample, final text, final's wait after speech end, translation time
    ("u00001", 0, 32_000, "one two three four five", 0.4, 0.1),
    ("u00002", 48_000, 80_000, "six seven eight", 0.6, 0.3),
)
"""Two utterances of 2 s each, eight words in all."""


def _speech_events(session_id: str) -> list[v1.VadEvent]:
    events = []
    for utterance_id, start, end, *_ in UTTERANCES:
        events.append(
            v1.VadEvent(
                session_id=session_id,
                utterance_id=utterance_id,
                kind="speech_start",
                start_samples=start,
            )
        )
        events.append(
            v1.VadEvent(
                session_id=session_id,
                utterance_id=utterance_id,
                kind="speech_end",
                start_samples=start,
                end_samples=end,
            )
        )
    return events


def _session_end(session_id: str, utterances: int) -> v1.VadEvent:
    return v1.VadEvent(
        session_id=session_id,
        utterance_id="",
        kind="session_end",
        start_samples=80_000,
        utterances=utterances,
    )


def _final(session_id: str, utterance_id: str, text: str, waited_s: float) -> v1.Transcript:
    speech_end_at = v1.utc_now()
    return v1.Transcript(
        session_id=session_id,
        utterance_id=utterance_id,
        kind="final",
        revision=0,
        text=text,
        language="en",
        start_s=0.0,
        end_s=2.0,
        speech_end_at=speech_end_at,
        published_at=speech_end_at + timedelta(seconds=waited_s),
    )


def _translation(session_id: str, utterance_id: str, took_s: float) -> v1.Translation:
    return v1.Translation(
        session_id=session_id,
        utterance_ids=(utterance_id,),
        source_language="en",
        target_language="pt",
        source_text="text",
        text="texto",
        engine="bergamot",
        latency_s=took_s,
    )


def _subject_of(contract: v1.Contract) -> str:
    if isinstance(contract, v1.VadEvent):
        return subjects.vad(contract.session_id)
    if isinstance(contract, v1.Transcript):
        return subjects.transcript(contract.kind, contract.session_id)
    assert isinstance(contract, v1.Translation)
    return subjects.translation(contract.target_language, contract.session_id)


async def _publish(client: Client, *contracts: v1.Contract) -> None:
    for contract in contracts:
        body, headers = encode(contract)
        await client.jetstream().publish(_subject_of(contract), body, headers=headers)


async def _snapshot_where(
    client: Client, session_id: str, wanted: Callable[[v1.AnalyticsSnapshot], bool]
) -> v1.AnalyticsSnapshot:
    """The first snapshot of the session that ``wanted`` accepts."""
    subscription = await client.jetstream().subscribe(
        subjects.analytics(session_id), ordered_consumer=True
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:
            msg = await subscription.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
            snapshot = decode_as(v1.AnalyticsSnapshot, msg.headers, msg.data)
            if wanted(snapshot):
                return snapshot
    finally:
        await subscription.unsubscribe()


def _is_final(snapshot: v1.AnalyticsSnapshot) -> bool:
    return snapshot.final


def _counted(stage: str, count: int) -> Callable[[v1.AnalyticsSnapshot], bool]:
    def wanted(snapshot: v1.AnalyticsSnapshot) -> bool:
        figures = snapshot.latency.get(stage)
        return figures is not None and figures.count == count

    return wanted


@contextlib.asynccontextmanager
async def _analytics_running(url: str) -> AsyncIterator[None]:
    runner = StageRunner(url, [AnalyticsStage(SETTINGS)])
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def summary(nats_server: EmbeddedServer) -> v1.AnalyticsSnapshot:
    """The final snapshot of a two-utterance session whose translations came first."""
    session_id = f"an-{uuid.uuid4().hex[:12]}"
    translations = [_translation(session_id, u[0], u[5]) for u in UTTERANCES]
    finals = [_final(session_id, u[0], u[3], u[4]) for u in UTTERANCES]
    client = await nats.connect(nats_server.url)
    try:
        async with _analytics_running(nats_server.url):
            await _publish(client, *_speech_events(session_id), *translations)
            await _snapshot_where(client, session_id, _counted("translate", len(UTTERANCES)))
            await _publish(client, _session_end(session_id, len(UTTERANCES)), *finals)
            return await _snapshot_where(client, session_id, _is_final)
    finally:
        await client.drain()


def test_final_snapshot_counts_the_utterances(summary: v1.AnalyticsSnapshot) -> None:
    assert summary.utterances == 2


def test_final_snapshot_counts_the_words_of_the_finals(summary: v1.AnalyticsSnapshot) -> None:
    assert summary.words == 8


def test_final_snapshot_sums_speech_between_start_and_end_events(
    summary: v1.AnalyticsSnapshot,
) -> None:
    assert summary.speech_s == pytest.approx(4.0)
    assert summary.words_per_minute == pytest.approx(120.0)


def test_transcribe_latency_is_each_final_publish_time_after_its_speech_end(
    summary: v1.AnalyticsSnapshot,
) -> None:
    latency = summary.latency["transcribe"]

    assert latency.count == 2
    assert latency.p50_s == pytest.approx(0.5)
    assert 0.5 < latency.p95_s <= 0.6


def test_translate_latency_is_each_translation_time(summary: v1.AnalyticsSnapshot) -> None:
    latency = summary.latency["translate"]

    assert latency.count == 2
    assert latency.p50_s == pytest.approx(0.2)


async def test_translation_of_the_last_final_is_in_the_final_snapshot(
    nats_url: str, nats_client: Client
) -> None:
    session_id = f"an-{uuid.uuid4().hex[:12]}"
    utterance_id, _, _, text, waited_s, took_s = UTTERANCES[0]
    speech = _speech_events(session_id)[:2]

    async with _analytics_running(nats_url):
        await _publish(nats_client, *speech, _session_end(session_id, 1))
        await _publish(nats_client, _final(session_id, utterance_id, text, waited_s))
        # The translate stage needs a moment after the final, as it does in the pipeline.
        await asyncio.sleep(took_s)
        await _publish(nats_client, _translation(session_id, utterance_id, took_s))
        summary = await _snapshot_where(nats_client, session_id, _is_final)

    assert summary.latency.get("translate") == v1.LatencyFigures(
        count=1, p50_s=took_s, p95_s=took_s
    )
