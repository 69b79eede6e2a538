"""Bad input at the edges of the pipeline: rejected with a reason, and the rest goes on.

Each broker case publishes one bad message to a running stage, then a good
session right behind it, and expects a dead letter that says what was wrong
and the good session processed as usual by the same stage. The CLI cases
expect a non-zero exit with one ``error:`` line naming what was wrong, and no
traceback.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import numpy as np
import numpy.typing as npt
import pytest
import structlog
from nats.aio.client import Client
from typer.testing import CliRunner

from livetranslate.cli.main import app
from livetranslate.contracts import decode, decode_as, encode, encode_audio, subjects, v1
from livetranslate.contracts import headers as h
from livetranslate.contracts.envelope import META
from livetranslate.ingest.decode import decode_file
from livetranslate.streams import Stage, StageRunner
from livetranslate.streams.logs import NOISY
from livetranslate.transcribe.engine import AudioArray, Recognition
from livetranslate.transcribe.stage import TranscribeStage
from livetranslate.vad.stage import VadStage

Pcm = npt.NDArray[np.int16]

LIBRIVOX = Path(__file__).parent / "data" / "librivox"
RECORDING = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"
CHUNK_SAMPLES = v1.SAMPLE_RATE_HZ // 10
TIMEOUT_S = 20.0
QUIET_S = 0.5
"""How long a read waits for messages that, if they exist, are already in the stream."""


def _session_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _speech(seconds: float = 1.5) -> Pcm:
    """The start of a LibriVox sentence: speech from its first 60 ms on."""
    return decode_file(RECORDING)[: int(seconds * v1.SAMPLE_RATE_HZ)]


def _chunk(session_id: str, seq: int, pcm: bytes, **meta: int) -> tuple[bytes, dict[str, str]]:
    chunk = v1.AudioChunkMeta.model_validate(
        {"session_id": session_id, "seq": seq, "offset_samples": seq * CHUNK_SAMPLES, **meta}
    )
    return encode_audio(chunk, pcm)


async def _publish_raw(
    client: Client, subject: str, body: bytes, headers: dict[str, str] | None
) -> None:
    await client.jetstream().publish(subject, body, headers=headers)


async def _publish_chunks(client: Client, session_id: str, samples: Pcm, first_seq: int) -> None:
    subject = subjects.audio_ingest(session_id)
    for index, offset in enumerate(range(0, len(samples), CHUNK_SAMPLES)):
        pcm = samples[offset : offset + CHUNK_SAMPLES].astype("<i2").tobytes()
        await _publish_raw(client, subject, *_chunk(session_id, first_seq + index, pcm))


async def _publish_marker(client: Client, session_id: str, kind: str, total: int = 0) -> None:
    marker = v1.SessionEvent.model_validate(
        {"session_id": session_id, "kind": kind, "total_samples": total}
    )
    await _publish_raw(client, subjects.audio_ingest(session_id), *encode(marker))


async def _publish_session(client: Client, session_id: str, samples: Pcm) -> None:
    await _publish_marker(client, session_id, "start")
    await _publish_chunks(client, session_id, samples, first_seq=0)
    await _publish_marker(client, session_id, "end", len(samples))


async def _first(
    client: Client, subject: str, wanted: type[v1.Contract], timeout_s: float = TIMEOUT_S
) -> v1.Contract | None:
    """The first ``wanted`` contract on ``subject``, from the start of its stream."""
    subscription = await client.jetstream().subscribe(subject, ordered_consumer=True)
    deadline = time.monotonic() + timeout_s
    try:
        while (left_s := deadline - time.monotonic()) > 0:
            with contextlib.suppress(nats.errors.TimeoutError):
                msg = await subscription.next_msg(timeout=left_s)
                contract = decode(msg.headers, msg.data).contract
                if isinstance(contract, wanted):
                    return contract
    finally:
        await subscription.unsubscribe()
    return None


async def _dead_letter(client: Client, stage: str, session_id: str) -> v1.DeadLetter:
    letter = await _first(client, subjects.dead_letter(stage, session_id), v1.DeadLetter)
    assert isinstance(letter, v1.DeadLetter), f"no dead letter for {session_id} from {stage}"
    return letter


async def _session_end(client: Client, session_id: str) -> v1.VadEvent:
    subscription = await client.jetstream().subscribe(
        subjects.vad(session_id), ordered_consumer=True
    )
    try:
        while True:
            msg = await subscription.next_msg(timeout=TIMEOUT_S)
            event = decode_as(v1.VadEvent, msg.headers, msg.data)
            if event.kind == "session_end":
                return event
    finally:
        await subscription.unsubscribe()


@contextlib.asynccontextmanager
async def _running(url: str, stage: Stage) -> AsyncIterator[None]:
    runner = StageRunner(url, [stage])
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


async def _vad_rejects(
    url: str,
    client: Client,
    session_id: str,
    body: bytes,
    headers: dict[str, str] | None,
) -> v1.DeadLetter:
    """Publish one bad message to a running VAD, then a good session right behind it.

    Returns the bad message's dead letter once the good session has been
    processed in full.
    """
    good_session_id = _session_id("good")
    async with _running(url, VadStage()):
        await _publish_raw(client, subjects.audio_ingest(session_id), body, headers)
        await _publish_session(client, good_session_id, _speech())
        end = await _session_end(client, good_session_id)
        letter = await _dead_letter(client, "vad", session_id)

    assert end.utterances == 1, "the session after the bad message was not processed as usual"
    assert letter.stage == "vad"
    assert letter.subject == subjects.audio_ingest(session_id)
    assert letter.payload_bytes == len(body)
    return letter


def _pcm(samples: int = CHUNK_SAMPLES) -> bytes:
    """The first ``samples`` of the speech as s16le bytes: a chunk's payload."""
    return _speech()[:samples].astype("<i2").tobytes()


@pytest.mark.broker
async def test_chunk_at_44100_hz_is_dead_lettered_naming_the_rate(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id("bad")
    body, headers = _chunk(session_id, 0, _pcm(), sample_rate_hz=44_100)

    letter = await _vad_rejects(nats_url, nats_client, session_id, body, headers)

    assert "sample_rate_hz" in letter.reason
    assert "44100" in letter.reason


@pytest.mark.broker
async def test_chunk_with_an_odd_byte_length_is_dead_lettered_naming_the_length(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id("bad")
    body, headers = _chunk(session_id, 0, _pcm() + b"\x00")

    letter = await _vad_rejects(nats_url, nats_client, session_id, body, headers)

    assert str(2 * CHUNK_SAMPLES + 1) in letter.reason


@pytest.mark.broker
@pytest.mark.parametrize(
    ("contract", "body", "meta", "expected"),
    [
        ("session_event", b"{not json", None, "invalid session_event"),
        ("audio_chunk", b"\x00\x00", "{not json", "invalid audio_chunk"),
        ("audio_chunk", b"\x00\x00", '{"session_id": "x", "seq": -1}', "seq"),
    ],
    ids=["json-body", "json-meta", "meta-out-of-range"],
)
async def test_payload_that_is_not_a_valid_contract_is_dead_lettered(
    nats_url: str,
    nats_client: Client,
    contract: str,
    body: bytes,
    meta: str | None,
    expected: str,
) -> None:
    session_id = _session_id("bad")
    headers = {h.CONTRACT: f"{contract}/v1", h.SESSION: session_id}
    if meta is not None:
        headers[META] = meta

    letter = await _vad_rejects(nats_url, nats_client, session_id, body, headers)

    assert expected in letter.reason


@pytest.mark.broker
async def test_unknown_contract_version_is_dead_lettered(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id("bad")
    body, headers = _chunk(session_id, 0, _pcm())
    headers[h.CONTRACT] = "audio_chunk/v7"

    letter = await _vad_rejects(nats_url, nats_client, session_id, body, headers)

    assert "unsupported contract version v7" in letter.reason


@pytest.mark.broker
async def test_message_without_a_contract_header_is_dead_lettered(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id("bad")

    letter = await _vad_rejects(nats_url, nats_client, session_id, _pcm(), None)

    assert f"missing {h.CONTRACT} header" in letter.reason


@pytest.mark.broker
async def test_contract_the_vad_does_not_read_is_dead_lettered(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id("bad")
    transcript = v1.Transcript(
        session_id=session_id,
        utterance_id="u00001",
        kind="final",
        revision=0,
        text="misrouted",
        start_s=0.0,
        end_s=1.0,
    )

    letter = await _vad_rejects(nats_url, nats_client, session_id, *encode(transcript))

    assert "expected audio_chunk or session_event, got transcript" in letter.reason


@pytest.mark.broker
async def test_rejected_chunk_does_not_hold_back_the_rest_of_its_session(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id("gap")
    speech = _speech()

    async with _running(nats_url, VadStage()):
        await _publish_marker(nats_client, session_id, "start")
        await _publish_raw(
            nats_client, subjects.audio_ingest(session_id), *_chunk(session_id, 0, _pcm()[:-1])
        )
        await _publish_chunks(nats_client, session_id, speech, first_seq=1)
        # A whole session behind it: once that one ended, the chunks above were handled.
        later_session_id = _session_id("good")
        await _publish_session(nats_client, later_session_id, speech)
        await _session_end(nats_client, later_session_id)
        start = await _first(nats_client, subjects.vad(session_id), v1.VadEvent, QUIET_S)

    assert start is not None, "speech after the rejected chunk was not segmented"


class CountingRecognizer:
    """Hears how many samples it was given; stands in for Whisper where words do not matter."""

    def recognize(
        self,
        audio: AudioArray,
        *,
        language: str | None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        draft: bool = False,
    ) -> Recognition:
        return Recognition(text=f"{len(audio)} samples", language="en")


def _speech_piece(session_id: str, pcm: bytes) -> tuple[bytes, dict[str, str]]:
    meta = v1.SpeechAudioMeta(
        session_id=session_id,
        utterance_id="u00001",
        piece=0,
        offset_samples=0,
        utterance_start_samples=0,
        is_last=True,
    )
    return encode_audio(meta, pcm)


@pytest.mark.broker
async def test_speech_piece_with_an_odd_byte_length_is_dead_lettered_by_transcribe(
    nats_url: str, nats_client: Client
) -> None:
    session_id, good_session_id = _session_id("bad"), _session_id("good")
    body, headers = _speech_piece(session_id, _pcm() + b"\x00")

    async with _running(nats_url, TranscribeStage(recognizer=CountingRecognizer())):
        await _publish_raw(nats_client, subjects.audio_speech(session_id), body, headers)
        good = _speech_piece(good_session_id, _pcm())
        await _publish_raw(nats_client, subjects.audio_speech(good_session_id), *good)
        final_subject = subjects.transcript("final", good_session_id)
        final = await _first(nats_client, final_subject, v1.Transcript)
        letter = await _dead_letter(nats_client, "transcribe", session_id)

    assert str(2 * CHUNK_SAMPLES + 1) in letter.reason
    assert isinstance(final, v1.Transcript)
    assert final.text == f"{CHUNK_SAMPLES} samples"


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    """A runner whose command may reconfigure logging; the test process gets its own back.

    The commands point structlog and the root logger at the stderr the runner
    captures and closes afterwards; later tests would log into a closed file.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY}
    yield CliRunner()
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved_level in levels.items():
        logging.getLogger(name).setLevel(saved_level)


def _one_error_line(cli: CliRunner, args: list[str]) -> str:
    """Run the CLI, insist on a clean failure, and return its one error line."""
    result = cli.invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_transcribe_of_a_text_file_names_the_file(cli: CliRunner, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n")

    line = _one_error_line(cli, ["transcribe", str(text)])

    assert str(text) in line
    assert "not a media file" in line


def test_cli_transcribe_of_an_empty_file_names_the_file(cli: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()

    line = _one_error_line(cli, ["transcribe", str(empty)])

    assert str(empty) in line
    assert "empty" in line


def test_cli_transcribe_of_a_missing_file_names_the_file(cli: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"

    line = _one_error_line(cli, ["transcribe", str(missing)])

    assert str(missing) in line
    assert "no such file" in line


@pytest.mark.parametrize("session_id", ["bad id", "a.b"])
def test_cli_publish_refuses_a_session_id_that_is_not_one_subject_token(
    cli: CliRunner, session_id: str
) -> None:
    line = _one_error_line(cli, ["publish", str(RECORDING), "--session", session_id])

    assert "session id" in line
    assert repr(session_id) in line


@pytest.mark.parametrize(
    "command", [["publish", str(RECORDING), "--session", "ok"], ["transcribe", str(RECORDING)]]
)
def test_cli_refuses_a_target_that_is_not_a_language_code(
    cli: CliRunner, command: list[str]
) -> None:
    line = _one_error_line(cli, [*command, "--translate", "xx-invalid-123"])

    assert "'xx-invalid-123' is not a language code" in line


@pytest.mark.broker
def test_cli_publish_refuses_a_chunk_length_out_of_range_before_publishing(
    cli: CliRunner, nats_url: str
) -> None:
    session_id = _session_id("cli")
    args = ["publish", str(RECORDING), "--session", session_id, "--nats", nats_url, "--fast"]

    result = cli.invoke(app, [*args, "--chunk-ms", "5"])

    # Typer refuses the value itself, as a usage error, before anything runs.
    assert result.exit_code == 2
    assert "--chunk-ms" in result.output


@pytest.mark.parametrize("sessions", ["0", "-1", "1,0", "abc", "", "100000"])
def test_cli_bench_refuses_session_counts_out_of_range_before_running(
    cli: CliRunner, sessions: str
) -> None:
    line = _one_error_line(cli, ["bench", str(RECORDING), "--sessions", sessions])

    assert f"--sessions {sessions!r}" in line


@pytest.mark.parametrize("command", [["up"], ["run", "edge"]])
def test_cli_refuses_a_port_out_of_range_as_a_usage_error(
    cli: CliRunner, command: list[str]
) -> None:
    result = cli.invoke(app, [*command, "--port", "99999"])

    # Typer refuses the value itself, naming the option and its range.
    assert result.exit_code == 2
    assert "--port" in result.output
    assert "65535" in result.output


def test_cli_unknown_stage_lists_every_stage(cli: CliRunner) -> None:
    line = _one_error_line(cli, ["run", "nosuchstage"])

    for stage in ("vad", "transcribe", "translate", "diarize", "analytics", "edge"):
        assert stage in line


@pytest.mark.model
def test_cli_transcribe_with_a_device_this_machine_lacks_says_so(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVETRANSLATE_TRANSCRIBE_DEVICE", "cuda")

    line = _one_error_line(cli, ["transcribe", str(RECORDING)])

    assert "cannot load the model" in line
    assert "on cuda" in line


def test_a_compute_type_ctranslate2_lacks_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from livetranslate.streams.settings import SettingsError, load
    from livetranslate.transcribe.stage import TranscribeSettings

    monkeypatch.setenv("LIVETRANSLATE_TRANSCRIBE_COMPUTE_TYPE", "bogus")

    with pytest.raises(SettingsError, match="LIVETRANSLATE_TRANSCRIBE_COMPUTE_TYPE"):
        load(TranscribeSettings)


@pytest.mark.model
@pytest.mark.broker
def test_cli_transcribe_of_silence_says_it_found_no_speech(cli: CliRunner, tmp_path: Path) -> None:
    import wave

    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(v1.SAMPLE_RATE_HZ)
        out.writeframes(bytes(3 * v1.SAMPLE_RATE_HZ * 2))

    result = cli.invoke(app, ["transcribe", str(silence)])

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"no speech found in {silence}" in result.stderr
