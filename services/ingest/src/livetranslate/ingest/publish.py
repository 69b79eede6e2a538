"""Publishing PCM audio to ``audio.ingest.<session>`` as a producer would.

Chunks go out at real-time pace, as a microphone would deliver them, or as
fast as the broker acknowledges them (``realtime=False``). Each carries a
``Nats-Msg-Id`` built from the session and chunk number, so a retried
publish is not stored twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from livetranslate.contracts import subjects, v1
from livetranslate.ingest.decode import chunk_samples
from livetranslate.streams import Publisher

__all__ = ["IN_FLIGHT", "publish_samples"]

IN_FLIGHT = 32
"""Acked publishes awaited together when not pacing: one at a time costs ~1 ms each."""

Progress = Callable[[int], None]


async def publish_samples(
    publisher: Publisher,
    session_id: str,
    samples: npt.NDArray[np.int16],
    *,
    chunk_ms: int = 100,
    realtime: bool = True,
    on_progress: Progress | None = None,
) -> int:
    """Publish a start marker, every chunk, then the end marker; returns samples sent."""
    subject = subjects.audio_ingest(session_id)
    start = v1.SessionEvent(session_id=session_id, kind="start")
    await publisher.publish(start, subject, msg_id=f"{session_id}:start")
    await _publish_chunks(publisher, session_id, samples, chunk_ms, realtime, on_progress)
    end = v1.SessionEvent(session_id=session_id, kind="end", total_samples=len(samples))
    await publisher.publish(end, subject, msg_id=f"{session_id}:end")
    return len(samples)


async def _publish_chunks(
    publisher: Publisher,
    session_id: str,
    samples: npt.NDArray[np.int16],
    chunk_ms: int,
    realtime: bool,
    on_progress: Progress | None,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending: list[asyncio.Task[None]] = []
    for seq, (offset, chunk) in enumerate(chunk_samples(samples, chunk_ms)):
        if realtime:
            await _sleep_until(started + offset / v1.SAMPLE_RATE_HZ)
        pending.append(
            asyncio.create_task(_publish_chunk(publisher, session_id, seq, offset, chunk))
        )
        if realtime or len(pending) >= IN_FLIGHT:
            await asyncio.gather(*pending)
            pending.clear()
            if on_progress:
                on_progress(offset + len(chunk))
    await asyncio.gather(*pending)
    if on_progress:
        on_progress(len(samples))


async def _publish_chunk(
    publisher: Publisher,
    session_id: str,
    seq: int,
    offset: int,
    chunk: npt.NDArray[np.int16],
) -> None:
    meta = v1.AudioChunkMeta(session_id=session_id, seq=seq, offset_samples=offset)
    subject = subjects.audio_ingest(session_id)
    pcm = chunk.astype("<i2", copy=False).tobytes()
    await publisher.publish_audio(meta, pcm, subject, msg_id=f"{session_id}:chunk:{seq}")


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)
