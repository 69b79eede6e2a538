"""No words come out of audio without speech, through the VAD and transcribe stages.

Silence, white and pink noise at three levels, a pure tone and breathing-like
bursts, 60 s of each, are published as sessions (as fast as the broker takes
them); none may give a transcript with a word in it, partial or final. The
VAD lets none of them through, so they are also handed to the transcribe
stage directly, cut into 15 s utterances as a VAD fooled by a noisy room
would cut them: its own guards must withhold the text and count why. A
recording with long pauses may give words only where it speaks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from librivox import recordings
from nats.aio.client import Client
from nats.aio.msg import Msg

from livetranslate.cli.commands import _publish_session
from livetranslate.cli.pipeline import stages
from livetranslate.cli.stages import StageName
from livetranslate.contracts import ContractError, decode, encode, encode_audio, subjects, v1
from livetranslate.ingest.decode import decode_file
from livetranslate.streams import StageRunner
from livetranslate.transcribe.stage import TranscribeStage

pytestmark = [pytest.mark.broker, pytest.mark.model]

Pcm = npt.NDArray[np.int16]
SECONDS = 60.0
RATE = v1.SAMPLE_RATE_HZ
TIMEOUT_S = 300.0
UTTERANCE_S = 15
"""The VAD's longest utterance."""
PIECE_SAMPLES = RATE // 5


def _scaled(signal: npt.NDArray[np.float64], dbfs: float) -> Pcm:
    rms = float(np.sqrt(np.mean(np.square(signal))))
    samples = signal / rms * 10 ** (dbfs / 20) * 32767
    return np.clip(samples, -32768, 32767).astype(np.int16)


def _white(dbfs: float, seed: int = 3) -> Pcm:
    return _scaled(np.random.default_rng(seed).standard_normal(int(SECONDS * RATE)), dbfs)


def _pink(dbfs: float, seed: int = 5) -> Pcm:
    white = np.random.default_rng(seed).standard_normal(int(SECONDS * RATE))
    spectrum = np.fft.rfft(white)
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    return _scaled(np.fft.irfft(spectrum / np.sqrt(frequencies), len(white)), dbfs)


def _tone(hz: float = 440.0, dbfs: float = -20.0) -> Pcm:
    seconds = np.arange(int(SECONDS * RATE)) / RATE
    return _scaled(np.sin(2 * np.pi * hz * seconds), dbfs)


def _breathing(dbfs: float = -30.0) -> Pcm:
    """Pink-noise puffs of 1.5 s under a raised-cosine envelope, one every 4 s."""
    noise = _pink(0.0, seed=7).astype(np.float64)
    seconds = np.arange(len(noise)) / RATE
    phase = (seconds % 4.0) / 1.5
    envelope = np.where(phase < 1.0, 0.5 - 0.5 * np.cos(2 * np.pi * phase), 0.0)
    return _scaled(noise * envelope + 1e-3, dbfs)


SIGNALS = {
    "silence": lambda: np.zeros(int(SECONDS * RATE), dtype=np.int16),
    "white -50 dBFS": lambda: _white(-50),
    "white -35 dBFS": lambda: _white(-35),
    "white -20 dBFS": lambda: _white(-20),
    "pink -50 dBFS": lambda: _pink(-50),
    "pink -35 dBFS": lambda: _pink(-35),
    "pink -20 dBFS": lambda: _pink(-20),
    "tone 440 Hz": _tone,
    "breathing": _breathing,
}


@dataclass
class _Session:
    transcripts: list[v1.Transcript] = field(default_factory=list)
    utterances: int | None = None

    @property
    def done(self) -> bool:
        finals = [t for t in self.transcripts if t.kind == "final"]
        return self.utterances is not None and len(finals) >= self.utterances


class _Watch:
    """Transcripts and the VAD's session end of a set of sessions."""

    def __init__(self, session_ids: list[str]) -> None:
        self.sessions = {session_id: _Session() for session_id in session_ids}

    async def start(self, client: Client) -> None:
        await client.subscribe("vad.>", cb=self._on_msg)
        await client.subscribe("transcript.>", cb=self._on_msg)

    async def wait(self) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not all(session.done for session in self.sessions.values()):
            assert time.monotonic() < deadline, "sessions did not finish"
            await asyncio.sleep(0.2)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            contract = decode(msg.headers, msg.data).contract
        except ContractError:
            return
        session = self.sessions.get(getattr(contract, "session_id", ""))
        if session is None:
            return
        if isinstance(contract, v1.Transcript):
            session.transcripts.append(contract)
        elif isinstance(contract, v1.VadEvent) and contract.kind == "session_end":
            session.utterances = contract.utterances


async def _play(url: str, client: Client, named: dict[str, Pcm]) -> dict[str, _Session]:
    ids = {name: f"quiet-{uuid.uuid4().hex[:8]}" for name in named}
    watch = _Watch(list(ids.values()))
    await watch.start(client)
    async with stages(url, [StageName.vad, StageName.transcribe]):
        for name, samples in named.items():
            config = v1.SessionConfig(session_id=ids[name], source_language="en")
            await _publish_session(url, config, samples, 100, realtime=False)
        await watch.wait()
    return {name: watch.sessions[ids[name]] for name in named}


async def _utterances(client: Client, session_id: str, samples: Pcm) -> int:
    """Publish ``samples`` as the VAD would if it took them all for speech; how many."""
    step = UTTERANCE_S * RATE
    for number, start in enumerate(range(0, len(samples), step), start=1):
        utterance = samples[start : start + step]
        offsets = range(0, len(utterance), PIECE_SAMPLES)
        for piece, offset in enumerate(offsets):
            meta = v1.SpeechAudioMeta(
                session_id=session_id,
                utterance_id=f"u{number:05d}",
                piece=piece,
                offset_samples=start + offset,
                utterance_start_samples=start,
                is_last=piece == len(offsets) - 1,
            )
            pcm = utterance[offset : offset + PIECE_SAMPLES].astype("<i2").tobytes()
            body, headers = encode_audio(meta, pcm)
            await client.jetstream().publish(
                subjects.audio_speech(session_id), body, headers=headers
            )
    end = v1.VadEvent(session_id=session_id, utterance_id="", kind="session_end", start_samples=0)
    body, headers = encode(end)
    await client.jetstream().publish(subjects.audio_speech(session_id), body, headers=headers)
    return number


def _words(session: _Session) -> list[str]:
    return [word for t in session.transcripts for word in t.text.split()]


async def test_silence_noise_tones_and_breathing_give_no_words(
    nats_url: str, nats_client: Client
) -> None:
    played = await _play(nats_url, nats_client, {name: make() for name, make in SIGNALS.items()})

    heard = {name: _words(session) for name, session in played.items() if _words(session)}
    assert heard == {}


async def test_the_transcribe_stage_alone_withholds_them_and_counts_why(
    nats_url: str, nats_client: Client
) -> None:
    ids = {name: f"noisy-{uuid.uuid4().hex[:8]}" for name in SIGNALS}
    watch = _Watch(list(ids.values()))
    await watch.start(nats_client)
    stage = TranscribeStage()
    runner = StageRunner(nats_url, [stage])
    await runner.start()
    try:
        for name, make in SIGNALS.items():
            utterances = await _utterances(nats_client, ids[name], make())
            watch.sessions[ids[name]].utterances = utterances
        await watch.wait()
    finally:
        await runner.stop()

    heard = {name: _words(watch.sessions[ids[name]]) for name in SIGNALS}
    assert {name: words for name, words in heard.items() if words} == {}
    for name, session_id in ids.items():
        stats = stage.session_stats(session_id)
        assert stats is not None
        assert sum(stats.finals_dropped.values()) == stats.finals, name


async def test_a_recording_with_long_pauses_gives_words_only_where_it_speaks(
    nats_url: str, nats_client: Client
) -> None:
    pause = np.zeros(20 * RATE, dtype=np.int16)
    parts: list[Pcm] = [pause]
    spans: list[tuple[float, float]] = []
    for file in list(recordings())[:3]:
        start = sum(len(part) for part in parts)
        samples = decode_file(file)
        parts += [samples, pause]
        spans.append((start / RATE, (start + len(samples)) / RATE))

    played = await _play(nats_url, nats_client, {"long": np.concatenate(parts)})

    finals = [t for t in played["long"].transcripts if t.kind == "final" and t.text]
    assert len(finals) >= len(spans)
    for final in finals:
        middle_s = (final.start_s + final.end_s) / 2
        assert any(start <= middle_s <= end for start, end in spans), final
