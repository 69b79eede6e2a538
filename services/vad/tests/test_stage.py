"""The VAD stage on a real broker: LibriVox chunks in, speech events and utterance audio out.

Each test runs its own ``VadStage`` on the shared test broker, publishes one
session under a fresh id, reads that session's ``vad.<s>`` and
``audio.speech.<s>`` back from their streams, and stops the stage.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import nats
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from nats.aio.client import Client

from livetranslate.contracts import decode, encode, encode_audio, subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.ingest.decode import decode_file
from livetranslate.streams import StageRunner
from livetranslate.streams.server import EmbeddedServer
from livetranslate.vad.segmenter import Segmenter, SileroVad, SpeechEnd
from livetranslate.vad.stage import VadSettings, VadStage

pytestmark = pytest.mark.broker

Pcm = npt.NDArray[np.int16]

LIBRIVOX = Path(__file__).parents[3] / "tests" / "data" / "librivox"
SHORT_RECORDINGS = (
    "sense_and_sensibility_01_austen_64kb-0880.wav",
    "sense_and_sensibility_01_austen_64kb-0930.wav",
)
"""Two recordings of about 3 s, one sentence each."""

CHUNK_SAMPLES = v1.SAMPLE_RATE_HZ // 10
PAUSE_SAMPLES = v1.SAMPLE_RATE_HZ
"""One second of silence: twice the stage's default min_silence_ms, so it closes an utterance."""

TIMEOUT_S = 20.0
MARKER_WAIT_S = 2.0
"""The end marker on audio.speech follows the one on vad.<s> by one publish."""


@dataclass(frozen=True)
class SessionOutput:
    """What the stage published for one session, in stream order."""

    events: list[v1.VadEvent]
    pieces: list[tuple[v1.SpeechAudioMeta, Pcm]]
    speech_markers: list[v1.VadEvent]
    """Contracts on ``audio.speech.<s>`` that are not audio: the session end."""

    def session_end(self) -> v1.VadEvent:
        (end,) = [e for e in self.events if e.kind == "session_end"]
        return end

    def spans(self) -> list[tuple[str, int, int]]:
        """``(utterance id, start, end)`` of each ``speech_end`` event."""
        return [
            (e.utterance_id, e.start_samples, e.end_samples or 0)
            for e in self.events
            if e.kind == "speech_end"
        ]

    def audio_of(self, utterance_id: str) -> list[tuple[v1.SpeechAudioMeta, Pcm]]:
        pieces = [(m, pcm) for m, pcm in self.pieces if m.utterance_id == utterance_id]
        return sorted(pieces, key=lambda piece: piece[0].piece)


def _recording(name: str) -> Pcm:
    return decode_file(LIBRIVOX / name)


def _silence(samples: int) -> Pcm:
    return np.zeros(samples, dtype=np.int16)


def _two_sentences() -> Pcm:
    """Two recordings, each followed by a pause: two utterances closed by silence."""
    parts = [
        part for name in SHORT_RECORDINGS for part in (_recording(name), _silence(PAUSE_SAMPLES))
    ]
    return np.concatenate(parts)


def _offline_spans(samples: Pcm) -> list[tuple[str, int, int]]:
    """The spans a fresh segmenter with the stage's options finds in ``samples``."""
    segmenter = Segmenter(SileroVad(), VadSettings().options())
    events = [
        event
        for offset in range(0, len(samples), CHUNK_SAMPLES)
        for event in segmenter.feed(samples[offset : offset + CHUNK_SAMPLES])
    ]
    events += segmenter.flush()
    return [
        (e.utterance_id, e.start_samples, e.end_samples) for e in events if isinstance(e, SpeechEnd)
    ]


async def _publish_session(
    client: Client, session_id: str, samples: Pcm, order: Iterable[int] | None = None
) -> None:
    """Start marker, chunks by sequence number in ``order`` (default: 0, 1, 2…), end marker.

    Nothing carries a ``Nats-Msg-Id``, so a sequence number listed twice reaches
    the stage twice, as a redelivery would.
    """
    js = client.jetstream()
    subject = subjects.audio_ingest(session_id)
    chunks = [
        samples[offset : offset + CHUNK_SAMPLES] for offset in range(0, len(samples), CHUNK_SAMPLES)
    ]
    await _publish_json(client, subject, v1.SessionEvent(session_id=session_id, kind="start"))
    for seq in range(len(chunks)) if order is None else order:
        meta = v1.AudioChunkMeta(session_id=session_id, seq=seq, offset_samples=seq * CHUNK_SAMPLES)
        body, headers = encode_audio(meta, chunks[seq].astype("<i2").tobytes())
        await js.publish(subject, body, headers=headers)
    end = v1.SessionEvent(session_id=session_id, kind="end", total_samples=len(samples))
    await _publish_json(client, subject, end)


async def _publish_json(client: Client, subject: str, contract: v1.Contract) -> None:
    body, headers = encode(contract)
    await client.jetstream().publish(subject, body, headers=headers)


async def _read_until(
    client: Client, subject: str, done: Callable[[list[Decoded]], bool], timeout_s: float
) -> list[Decoded]:
    """Messages on ``subject`` from the start of its stream until ``done`` says enough.

    Returns what came when ``timeout_s`` passes first; the caller's assertions
    say what was missing.
    """
    subscription = await client.jetstream().subscribe(subject, ordered_consumer=True)
    deadline = time.monotonic() + timeout_s
    found: list[Decoded] = []
    try:
        while not done(found) and (left_s := deadline - time.monotonic()) > 0:
            with contextlib.suppress(nats.errors.TimeoutError):
                msg = await subscription.next_msg(timeout=left_s)
                found.append(decode(msg.headers, msg.data))
    finally:
        await subscription.unsubscribe()
    return found


def _ends_session(found: list[Decoded]) -> bool:
    return any(_is_session_end(d.contract) for d in found)


def _is_session_end(contract: v1.Contract) -> bool:
    return isinstance(contract, v1.VadEvent) and contract.kind == "session_end"


def _closes(utterances: int) -> Callable[[list[Decoded]], bool]:
    """Done once ``utterances`` last pieces and the session end marker have come."""

    def done(found: list[Decoded]) -> bool:
        contracts = [d.contract for d in found]
        last_pieces = [c for c in contracts if isinstance(c, v1.SpeechAudioMeta) and c.is_last]
        return len(last_pieces) >= utterances and any(map(_is_session_end, contracts))

    return done


@contextlib.asynccontextmanager
async def _vad_running(url: str) -> AsyncIterator[None]:
    runner = StageRunner(url, [VadStage()])
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


async def _run_session(
    url: str, client: Client, samples: Pcm, order: Iterable[int] | None = None
) -> SessionOutput:
    """Publish one session to a running VAD stage and read back all it published for it.

    ``vad.<s>`` is read up to its session end; ``audio.speech.<s>`` up to the last
    piece of every utterance that announced, and its own end marker, which is
    waited for at most ``MARKER_WAIT_S`` once the vad subject has ended.
    """
    session_id = f"vad-{uuid.uuid4().hex[:12]}"
    async with _vad_running(url):
        await _publish_session(client, session_id, samples, order)
        events = await _read_until(client, subjects.vad(session_id), _ends_session, TIMEOUT_S)
        ends = [d.contract for d in events if _is_session_end(d.contract)]
        assert ends, f"no session_end on {subjects.vad(session_id)} within {TIMEOUT_S} s"
        utterances = sum(1 for d in events if getattr(d.contract, "kind", "") == "speech_end")
        speech = await _read_until(
            client, subjects.audio_speech(session_id), _closes(utterances), MARKER_WAIT_S
        )
    pieces = [
        (d.contract, np.frombuffer(d.pcm, dtype="<i2"))
        for d in speech
        if isinstance(d.contract, v1.SpeechAudioMeta)
    ]
    return SessionOutput(
        events=[d.contract for d in events if isinstance(d.contract, v1.VadEvent)],
        pieces=pieces,
        speech_markers=[d.contract for d in speech if isinstance(d.contract, v1.VadEvent)],
    )


def _assert_reassembles(output: SessionOutput, samples: Pcm) -> None:
    """Each utterance's pieces, in order, are exactly the input in [start, end)."""
    for utterance_id, start, end in output.spans():
        pieces = output.audio_of(utterance_id)
        assert [meta.piece for meta, _ in pieces] == list(range(len(pieces)))
        assert [meta.is_last for meta, _ in pieces] == [False] * (len(pieces) - 1) + [True]
        assert {meta.utterance_start_samples for meta, _ in pieces} == {start}
        offsets = [meta.offset_samples for meta, _ in pieces]
        assert offsets == list(start + np.cumsum([0] + [len(pcm) for _, pcm in pieces[:-1]]))
        np.testing.assert_array_equal(
            np.concatenate([pcm for _, pcm in pieces]), samples[start:end]
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_sentences(nats_server: EmbeddedServer) -> tuple[Pcm, SessionOutput]:
    """Two sentences with pauses, published in order once for the module's tests."""
    samples = _two_sentences()
    client = await nats.connect(nats_server.url)
    try:
        return samples, await _run_session(nats_server.url, client, samples)
    finally:
        await client.drain()


def test_each_utterance_has_a_start_then_an_end_event(
    two_sentences: tuple[Pcm, SessionOutput],
) -> None:
    _, output = two_sentences
    speech = [(e.kind, e.utterance_id) for e in output.events if e.kind != "session_end"]

    assert speech == [
        ("speech_start", "u00001"),
        ("speech_end", "u00001"),
        ("speech_start", "u00002"),
        ("speech_end", "u00002"),
    ]


def test_speech_events_span_the_utterances_an_offline_segmenter_finds(
    two_sentences: tuple[Pcm, SessionOutput],
) -> None:
    samples, output = two_sentences
    starts = [e.start_samples for e in output.events if e.kind == "speech_start"]

    assert output.spans() == _offline_spans(samples)
    assert starts == [start for _, start, _ in output.spans()]


def test_speech_pieces_reassemble_to_the_input_between_start_and_end(
    two_sentences: tuple[Pcm, SessionOutput],
) -> None:
    samples, output = two_sentences

    assert len(output.spans()) == 2
    _assert_reassembles(output, samples)


def test_session_end_reports_the_utterance_count(
    two_sentences: tuple[Pcm, SessionOutput],
) -> None:
    _, output = two_sentences

    assert output.events[-1] == output.session_end()
    assert output.session_end().utterances == 2


def test_session_end_is_also_published_after_the_speech_audio(
    two_sentences: tuple[Pcm, SessionOutput],
) -> None:
    _, output = two_sentences

    assert [(e.kind, e.utterances) for e in output.speech_markers] == [("session_end", 2)]


async def test_a_chunk_delivered_twice_does_not_duplicate_audio(
    nats_url: str, nats_client: Client
) -> None:
    samples = _recording(SHORT_RECORDINGS[0])
    count = -(-len(samples) // CHUNK_SAMPLES)
    # Chunk 3 again at once, chunk 10 again after chunk 20: a redelivery comes late.
    order = [*range(4), 3, *range(4, 21), 10, *range(21, count)]

    output = await _run_session(nats_url, nats_client, samples, order)

    assert output.spans() == _offline_spans(samples)
    _assert_reassembles(output, samples)


async def test_silence_only_session_ends_with_no_utterances(
    nats_url: str, nats_client: Client
) -> None:
    output = await _run_session(nats_url, nats_client, _silence(3 * v1.SAMPLE_RATE_HZ))

    assert [e.kind for e in output.events] == ["session_end"]
    assert output.session_end().utterances == 0
    assert output.pieces == []
