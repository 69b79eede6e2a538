"""Play a recording through VAD, transcribe and diarize on an embedded broker, and time it.

Usage (from the repository root)::

    uv run python services/diarize/tools/measure_pipeline.py \
        tests/data/pyannote/sample.wav tests/data/pyannote/sample.rttm --pace 1

Chunks of 100 ms go to ``audio.ingest.<s>`` at ``--pace`` times real time.
Prints the diarization error rate of the turns on ``speaker.<s>`` (collar
0.25 s, and none) and, per utterance, when its final transcript and its last
speaker turn arrived: the issue asks for the label within 1 s (p95) of the
final.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
import wave
from pathlib import Path

import nats
import numpy as np
from livetranslate.contracts import decode, encode, encode_audio, subjects, v1
from livetranslate.diarize.scoring import Turn, diarization_error_rate, read_rttm
from livetranslate.diarize.stage import DiarizeStage
from livetranslate.streams import StageRunner
from livetranslate.streams.apply import apply_topology
from livetranslate.streams.logs import configure
from livetranslate.streams.server import EmbeddedServer
from livetranslate.transcribe.stage import TranscribeStage
from livetranslate.vad.stage import VadStage
from nats.aio.msg import Msg

CHUNK = v1.SAMPLE_RATE_HZ // 10


async def measure(audio: Path, rttm: Path, pace: float) -> None:
    with tempfile.TemporaryDirectory() as store, wave.open(str(audio)) as file:
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
        async with EmbeddedServer(Path(store)) as server:
            client = await nats.connect(server.url)
            await apply_topology(client)
            runner = StageRunner(server.url, [VadStage(), TranscribeStage(), DiarizeStage()])
            await runner.start()
            try:
                await _session(client, samples, rttm, pace)
            finally:
                await runner.stop()
                await client.drain()


async def _session(client: nats.NATS, samples: np.ndarray, rttm: Path, pace: float) -> None:
    session_id = f"measure-{uuid.uuid4().hex[:8]}"
    finals: dict[str, float] = {}
    turns: list[tuple[float, v1.SpeakerTurn]] = []
    ended: list[int] = []

    async def on_vad(msg: Msg) -> None:
        event = decode(msg.headers, msg.data).contract
        if isinstance(event, v1.VadEvent) and event.kind == "session_end":
            ended.append(event.utterances)

    async def on_final(msg: Msg) -> None:
        final = decode(msg.headers, msg.data).contract
        assert isinstance(final, v1.Transcript)
        finals[final.utterance_id] = time.monotonic()

    async def on_turn(msg: Msg) -> None:
        turn = decode(msg.headers, msg.data).contract
        assert isinstance(turn, v1.SpeakerTurn)
        turns.append((time.monotonic(), turn))

    await client.subscribe(subjects.transcript("final", session_id), cb=on_final)
    await client.subscribe(subjects.speaker(session_id), cb=on_turn)
    await client.subscribe(subjects.vad(session_id), cb=on_vad)
    await _publish(client, session_id, samples, pace)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        labelled = {turn.utterance_id for _, turn in turns}
        if ended and len(finals) == len(labelled) == ended[0]:
            break
        await asyncio.sleep(0.1)
    _report(finals, turns, read_rttm(rttm))


async def _publish(client: nats.NATS, session_id: str, samples: np.ndarray, pace: float) -> None:
    js, subject = client.jetstream(), subjects.audio_ingest(session_id)
    body, headers = encode(v1.SessionEvent(session_id=session_id, kind="start"))
    await js.publish(subject, body, headers=headers)
    started = time.monotonic()
    for seq, offset in enumerate(range(0, len(samples), CHUNK)):
        await asyncio.sleep(max(started + offset / v1.SAMPLE_RATE_HZ / pace - time.monotonic(), 0))
        meta = v1.AudioChunkMeta(session_id=session_id, seq=seq, offset_samples=offset)
        body, headers = encode_audio(meta, samples[offset : offset + CHUNK].tobytes())
        await js.publish(subject, body, headers=headers)
    end = v1.SessionEvent(session_id=session_id, kind="end", total_samples=len(samples))
    body, headers = encode(end)
    await js.publish(subject, body, headers=headers)


def _report(
    finals: dict[str, float], turns: list[tuple[float, v1.SpeakerTurn]], reference: list[Turn]
) -> None:
    hypothesis = [Turn(t.speaker, t.start_s, t.end_s) for _, t in turns]
    rate = diarization_error_rate(reference, hypothesis)
    plain = diarization_error_rate(reference, hypothesis, collar_s=0.0)
    print(f"DER {rate.der:.3f} (collar 0.25 s), {plain.der:.3f} (no collar); {rate.mapping}")
    print(f"  missed {rate.missed_s:.2f} s, false alarm {rate.false_alarm_s:.2f} s, ", end="")
    print(f"confusion {rate.confusion_s:.2f} s of {rate.reference_s:.2f} s")
    delays = []
    for utterance_id, final_at in sorted(finals.items()):
        labelled_at = max(at for at, t in turns if t.utterance_id == utterance_id)
        delays.append(labelled_at - final_at)
        speakers = sorted({t.speaker for _, t in turns if t.utterance_id == utterance_id})
        print(f"  {utterance_id}: label {labelled_at - final_at:+.3f} s after final, {speakers}")
    print(f"label after final: p95 {np.percentile(delays, 95):+.3f} s, max {max(delays):+.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", type=Path)
    parser.add_argument("rttm", type=Path)
    parser.add_argument("--pace", type=float, default=1.0, help="times real time")
    args = parser.parse_args()
    configure("WARNING")
    asyncio.run(measure(args.audio, args.rttm, args.pace))


if __name__ == "__main__":
    main()
