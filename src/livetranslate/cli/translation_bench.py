"""Translation figures: latency after a final, and sentences per second.

How a run goes: an embedded broker, the translate stage in this process with
the Bergamot engine (en->pt), and a producer that publishes finals to
``transcript.final.<session>`` as the transcribe stage would. Every final is
one whole English sentence, so no final waits for another to complete it.

What is measured:

- latency after the final, one session: each final is published and its
  translation awaited before the next (a live session's finals are seconds
  apart); measured by the producer from just before it publishes the final to
  when the translation reaches its subscription, p50 and p95. Beside it the
  stage's own ``latency_s`` (final received to translation published);
- sentences per second for 1 and for 8 sessions: every session's finals are
  published at once, and the figure is the finals translated divided by the
  time from the first publish to the last translation.

The machine's load average is reported with the figures: on a shared
machine other work takes cores from the engine.

Run it with ``uv run python -m livetranslate.cli.translation_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from itertools import product
from typing import Any, Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from livetranslate.cli.pipeline import broker
from livetranslate.contracts import decode, encode, subjects, v1
from livetranslate.streams import StageRunner
from livetranslate.streams.sessions import SessionStore
from livetranslate.translate.engines import BergamotEngine, Router
from livetranslate.translate.stage import TranslateSettings, TranslateStage

__all__ = ["measure_translation", "sentences"]

TARGET: Final = "pt"
TIMEOUT_S: Final = 120.0

_WHO: Final = ("The team", "Our manager", "The new engineer", "Maria", "The client", "Everyone")
_DID: Final = (
    "reviewed the budget",
    "shipped the release",
    "called the supplier",
    "signed the contract",
    "tested the new feature",
    "moved the meeting",
)
_WHEN: Final = ("this morning", "on Friday", "before lunch", "last week", "after the call")
_WHY: Final = (
    "because the numbers did not add up",
    "so that we can start on Monday",
    "although nobody had asked for it",
    "and the results look better than we expected",
)


def sentences(count: int) -> list[str]:
    """``count`` distinct English sentences of meeting talk (up to 720), 12 to 18 words."""
    made = [
        f"{who} {did} {when} {why}." for who, did, when, why in product(_WHO, _DID, _WHEN, _WHY)
    ]
    return [made[(i * 37) % len(made)] for i in range(count)]


async def measure_translation(
    latency_finals: int = 40,
    throughput_finals: int = 160,
    session_counts: Sequence[int] = (1, 8),
    bergamot_threads: int = 1,
) -> dict[str, Any]:
    """Run the measurements described in the module docstring; returns the figures."""
    engine = BergamotEngine(threads=bergamot_threads)
    await asyncio.to_thread(engine.load)
    stage = TranslateStage(TranslateSettings(), router=Router([engine]))
    figures: dict[str, Any] = {
        "engine": "bergamot en->pt",
        "words_per_sentence": round(
            statistics.mean(len(text.split()) for text in sentences(throughput_finals)), 1
        ),
        "bergamot_threads": bergamot_threads,
        "cpu_count": os.cpu_count(),
        "load_average_before": _load(),
    }
    async with broker(None, None) as url:
        runner = StageRunner(url, [stage])
        await runner.start()
        client = await nats.connect(url)
        try:
            await _latency(client, 3)  # warm-up: first messages pay for connections
            figures["latency"] = await _latency(client, latency_finals)
            figures["throughput"] = {}
            for count in session_counts:
                batches, jobs = stage.metrics.batches, stage.metrics.batched_jobs
                found = await _throughput(client, count, throughput_finals)
                found["engine_calls"] = stage.metrics.batches - batches
                found["sentences_per_call"] = round(
                    (stage.metrics.batched_jobs - jobs) / max(found["engine_calls"], 1), 1
                )
                figures["throughput"][f"{count}_sessions"] = found
        finally:
            await client.close()
            await runner.stop()
    figures["load_average_after"] = _load()

    return figures


async def _latency(client: Client, count: int) -> dict[str, Any]:
    session_id = await _session(client)
    inbox: asyncio.Queue[Msg] = asyncio.Queue()
    subscription = await client.subscribe(subjects.translation(TARGET, session_id), cb=inbox.put)
    seen_s: list[float] = []
    stage_s: list[float] = []
    for index, text in enumerate(sentences(count)):
        started = time.perf_counter()
        await _publish(client, session_id, index, text)
        translation = await _next_translation(inbox)
        seen_s.append(time.perf_counter() - started)
        stage_s.append(translation.latency_s)
        await asyncio.sleep(0.05)
    await subscription.unsubscribe()

    return {
        "finals": count,
        "after_final_p50_ms": _ms(_percentile(seen_s, 50)),
        "after_final_p95_ms": _ms(_percentile(seen_s, 95)),
        "in_stage_p50_ms": _ms(_percentile(stage_s, 50)),
        "in_stage_p95_ms": _ms(_percentile(stage_s, 95)),
    }


async def _throughput(client: Client, session_count: int, finals: int) -> dict[str, Any]:
    session_ids = [await _session(client) for _ in range(session_count)]
    inbox: asyncio.Queue[Msg] = asyncio.Queue()
    subscriptions = [
        await client.subscribe(subjects.translation(TARGET, s), cb=inbox.put) for s in session_ids
    ]
    texts = sentences(finals)
    started = time.perf_counter()
    for index, text in enumerate(texts):
        await _publish(client, session_ids[index % session_count], index, text)
    for _ in texts:
        await _next_translation(inbox)
    took_s = time.perf_counter() - started
    for subscription in subscriptions:
        await subscription.unsubscribe()

    return {
        "sessions": session_count,
        "finals": finals,
        "seconds": round(took_s, 3),
        "sentences_per_s": round(finals / took_s, 1),
    }


async def _session(client: Client) -> str:
    session_id = f"tbench-{uuid.uuid4().hex[:10]}"
    store = SessionStore(client)
    await store.open()
    await store.put(v1.SessionConfig(session_id=session_id, target_languages=(TARGET,)))

    return session_id


async def _publish(client: Client, session_id: str, index: int, text: str) -> None:
    final = v1.Transcript(
        session_id=session_id,
        utterance_id=f"u{index:05d}",
        kind="final",
        revision=0,
        text=text,
        language="en",
        start_s=index * 3.0,
        end_s=index * 3.0 + 2.5,
    )
    body, headers = encode(final)
    await client.jetstream().publish(
        subjects.transcript("final", session_id), body, headers=headers
    )


async def _next_translation(inbox: asyncio.Queue[Msg]) -> v1.Translation:
    msg = await asyncio.wait_for(inbox.get(), TIMEOUT_S)
    translation = decode(msg.headers, msg.data).contract
    assert isinstance(translation, v1.Translation), translation

    return translation


def _percentile(values: Sequence[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _load() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-finals", type=int, default=40)
    parser.add_argument("--throughput-finals", type=int, default=160)
    parser.add_argument("--bergamot-threads", type=int, default=1)
    args = parser.parse_args()
    from livetranslate.streams.logs import configure

    configure("WARNING", "console")
    figures = asyncio.run(
        measure_translation(
            args.latency_finals, args.throughput_finals, bergamot_threads=args.bergamot_threads
        )
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
