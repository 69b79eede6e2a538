"""The whole pipeline on a real broker, with real models and real recordings."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import nats
import pytest
from librivox import recordings, wer
from nats.aio.client import Client

from livetranslate.cli.commands import SessionRequest, _publish_session
from livetranslate.cli.pipeline import stages
from livetranslate.cli.session import SessionWatch
from livetranslate.cli.stages import PIPELINE
from livetranslate.contracts import decode_as, v1
from livetranslate.ingest.decode import decode_file

pytestmark = [pytest.mark.broker, pytest.mark.model]


async def _transcribe(url: str, client: Client, file: Path) -> tuple[SessionWatch, float]:
    request = SessionRequest(f"e2e-{uuid.uuid4().hex[:8]}", ("pt",), "en", 100)
    config = request.config()
    watch = SessionWatch(client, config.session_id, config.target_languages)
    await watch.start()
    started = time.monotonic()
    await _publish_session(url, config, decode_file(file), 100, realtime=False)
    await watch.wait(120)
    await watch.stop()
    return watch, time.monotonic() - started


async def test_librivox_through_the_pipeline_has_low_wer_and_portuguese(
    nats_url: str, nats_client: Client
) -> None:
    references, hypotheses = [], []
    async with stages(nats_url, PIPELINE):
        for file, reference in recordings().items():
            watch, took_s = await _transcribe(nats_url, nats_client, file)
            captions = watch.ordered()
            print(f"{file.name}: {took_s:.2f} s, {len(captions)} utterances")
            assert captions, f"no final for {file.name}"
            assert all(c.translations.get("pt") for c in captions if c.text)
            references.append(reference)
            hypotheses.append(" ".join(c.text for c in captions))
    error_rate = wer(references, hypotheses)
    print(f"end-to-end WER {error_rate:.3f}")
    assert error_rate <= 0.15


async def test_each_utterance_gets_exactly_one_final_and_an_analytics_summary(
    nats_url: str, nats_client: Client
) -> None:
    file = next(iter(recordings()))
    async with stages(nats_url, PIPELINE):
        watch, _ = await _transcribe(nats_url, nats_client, file)
        await asyncio.sleep(1.0)
        finals = await _fetch(nats_client, f"transcript.final.{watch.session_id}", v1.Transcript)
        summary = await _last_analytics(nats_client, watch.session_id)
    ids = [f.utterance_id for f in finals]
    assert len(ids) == len(set(ids)) == len(watch.captions)
    assert summary.utterances == len(ids)
    assert summary.words == sum(len(f.text.split()) for f in finals)
    assert summary.speech_s > 1.0


async def _fetch(client: Client, subject: str, model: type[v1.Transcript]) -> list[v1.Transcript]:
    sub = await client.jetstream().subscribe(subject, ordered_consumer=True)
    found = []
    while True:
        try:
            msg = await sub.next_msg(timeout=1.0)
        except nats.errors.TimeoutError:
            break
        found.append(decode_as(model, msg.headers, msg.data))
    await sub.unsubscribe()
    return found


async def _last_analytics(client: Client, session_id: str) -> v1.AnalyticsSnapshot:
    sub = await client.jetstream().subscribe(f"analytics.{session_id}", ordered_consumer=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = await sub.next_msg(timeout=60)
        snapshot = decode_as(v1.AnalyticsSnapshot, msg.headers, msg.data)
        if snapshot.final:
            await sub.unsubscribe()
            return snapshot
    raise AssertionError("no final analytics snapshot")
