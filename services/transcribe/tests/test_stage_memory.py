"""The transcribe stage's memory stays flat over a long session (real model, no broker).

Utterances go straight into the stage, as its handler would give them, and its
transcripts to a publisher that only counts them: what is measured is the
stage and the recogniser, not the broker's client.
"""

from __future__ import annotations

import asyncio
import gc
import wave
from pathlib import Path

import numpy as np
import pytest

from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.transcribe.stage import TranscribeStage

pytestmark = [pytest.mark.model]

RECORDING = (
    Path(__file__).parents[3]
    / "tests"
    / "data"
    / "librivox"
    / "sense_and_sensibility_01_austen_64kb-0880.wav"
)
PIECE_SAMPLES = v1.SAMPLE_RATE_HZ // 5
STATUS = Path("/proc/self/status")


class CountingPublisher:
    """Counts what the stage publishes; ``final`` is set by each final."""

    def __init__(self) -> None:
        self.published = 0
        self.final = asyncio.Event()

    async def publish(self, contract: v1.Contract, subject: str, msg_id: str | None = None) -> None:
        self.published += 1
        if isinstance(contract, v1.Transcript) and contract.kind == "final":
            self.final.set()


class Unbrokered:
    """Stands for a message's delivery where there is no broker: keeping it keeps nothing."""

    def keep(self) -> Unbrokered:
        return self

    async def ack(self) -> None:
        pass

    async def retry(self, exc: Exception) -> None:
        pass

    def release(self) -> None:
        pass


def _rss_mib() -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


async def _speak(
    stage: TranscribeStage, publisher: CountingPublisher, session_id: str, number: int
) -> None:
    with wave.open(str(RECORDING)) as recording:
        samples = np.frombuffer(recording.readframes(recording.getnframes()), dtype=np.int16)
    offsets = range(0, len(samples), PIECE_SAMPLES)
    publisher.final.clear()
    for piece, offset in enumerate(offsets):
        meta = v1.SpeechAudioMeta(
            session_id=session_id,
            utterance_id=f"u{number:05d}",
            piece=piece,
            offset_samples=offset,
            utterance_start_samples=0,
            is_last=piece == len(offsets) - 1,
            speech_end_at=v1.utc_now(),
        )
        pcm = samples[offset : offset + PIECE_SAMPLES].tobytes()
        subject = subjects.audio_speech(session_id)
        await stage.handle(Decoded(meta, pcm), subject, Unbrokered())  # type: ignore[arg-type]
        await asyncio.sleep(0.02)  # leaves the worker time for partials
    await asyncio.wait_for(publisher.final.wait(), timeout=30)


@pytest.mark.skipif(not STATUS.is_file(), reason="reads resident memory from /proc")
async def test_memory_stays_flat_over_many_utterances() -> None:
    stage = TranscribeStage()
    publisher = CountingPublisher()
    stage._publisher = publisher  # type: ignore[assignment]  # counts instead of publishing
    await stage.start(None)  # type: ignore[arg-type]  # no session store: default configs
    try:
        for number in range(1, 21):
            await _speak(stage, publisher, "memory", number)
        gc.collect()
        before_mib = _rss_mib()
        for number in range(21, 101):
            await _speak(stage, publisher, "memory", number)
        gc.collect()
        grown_mib = _rss_mib() - before_mib
    finally:
        await stage.stop()

    assert publisher.published >= 100
    assert grown_mib < 8.0, f"resident memory grew {grown_mib:.1f} MiB over 80 utterances"
