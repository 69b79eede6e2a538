"""Speaker labels through the pipeline: how soon after each final, and how right.

A recording is played at real-time pace through VAD, transcribe and diarize
on an embedded broker. For each utterance the time its last speaker turn
arrived is compared with the time its final arrived (a label may come
first: the figure is then negative). With a reference RTTM beside the
recording (``call.wav`` → ``call.rttm``), the diarization error rate is
scored too (collar 0.25 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import numpy as np
from nats.aio.msg import Msg

from livetranslate.cli.commands import SessionRequest, _publish_session
from livetranslate.cli.pipeline import broker, stages
from livetranslate.cli.stages import StageName
from livetranslate.contracts import ContractError, decode, subjects, v1
from livetranslate.diarize.scoring import Turn, diarization_error_rate, read_rttm
from livetranslate.ingest.decode import decode_file

__all__ = ["measure_speakers"]

STAGES = (StageName.vad, StageName.transcribe, StageName.diarize)


class _Arrivals:
    """When each final and each speaker turn of one session arrived."""

    def __init__(self) -> None:
        self.finals: dict[str, float] = {}
        self.turns: list[tuple[float, v1.SpeakerTurn]] = []
        self.expected: int | None = None
        self.done = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        try:
            contract = decode(msg.headers, msg.data).contract
        except ContractError:
            return
        if isinstance(contract, v1.Transcript) and contract.kind == "final":
            self.finals[contract.utterance_id] = time.monotonic()
        elif isinstance(contract, v1.SpeakerTurn):
            self.turns.append((time.monotonic(), contract))
        elif isinstance(contract, v1.VadEvent) and contract.kind == "session_end":
            self.expected = contract.utterances
        if self.complete():
            self.done.set()

    def complete(self) -> bool:
        labelled = {turn.utterance_id for _, turn in self.turns}
        done = self.expected is not None and len(self.finals) >= self.expected
        return done and labelled >= set(self.finals)

    def label_after_final_s(self) -> list[float]:
        delays = []
        for utterance_id, final_at in self.finals.items():
            arrivals = [at for at, turn in self.turns if turn.utterance_id == utterance_id]
            if arrivals:
                delays.append(max(arrivals) - final_at)
        return delays


async def measure_speakers(recording: Path, timeout_s: float = 120.0) -> dict[str, Any]:
    """Label latency after the final (p50, p95, max) and, with a reference, the DER."""
    samples = decode_file(recording)
    session_id = f"speakers-{uuid.uuid4().hex[:8]}"
    arrivals = _Arrivals()
    async with broker(None, None) as url, stages(url, STAGES):
        client = await nats.connect(url)
        for subject in (
            subjects.transcript("final", session_id),
            subjects.speaker(session_id),
            subjects.vad(session_id),
        ):
            await client.subscribe(subject, cb=arrivals.on_msg)
        config = SessionRequest(session_id, (), "en", 100).config()
        await _publish_session(url, config, samples, 100, realtime=True)
        await _wait(arrivals, timeout_s)
        await client.close()
    return _report(recording, arrivals)


async def _wait(arrivals: _Arrivals, timeout_s: float) -> None:
    # A session that never completes is reported with what arrived.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(arrivals.done.wait(), timeout_s)


def _report(recording: Path, arrivals: _Arrivals) -> dict[str, Any]:
    delays = arrivals.label_after_final_s()
    report: dict[str, Any] = {
        "recording": recording.name,
        "utterances": len(arrivals.finals),
        "speakers": sorted({turn.speaker for _, turn in arrivals.turns}),
        "label_after_final_s": {
            "p50": round(float(np.percentile(delays, 50)), 3) if delays else None,
            "p95": round(float(np.percentile(delays, 95)), 3) if delays else None,
            "max": round(max(delays), 3) if delays else None,
        },
    }
    reference = recording.with_suffix(".rttm")
    if reference.exists():
        hypothesis = [Turn(t.speaker, t.start_s, t.end_s) for _, t in arrivals.turns]
        report["der"] = round(diarization_error_rate(read_rttm(reference), hypothesis).der, 4)
    return report
