"""The transcribe stage on a real broker, with the bundled Whisper tiny.en.

Utterance audio is published as the VAD stage would (``speech_audio`` pieces
on ``audio.speech.<s>``), cut from the LibriVox recordings. Finals are counted
on a core NATS subscription, which sees every publish, even one the stream
would drop as a duplicate. A session's results are complete once a silent
sentinel utterance published after it has its final: the stage consumes in
stream order and finishes closed utterances in the order they closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from livetranslate.contracts import decode_as, encode_audio, subjects, v1
from livetranslate.ingest.decode import decode_file
from livetranslate.streams import StageRunner
from livetranslate.streams.server import EmbeddedServer
from livetranslate.transcribe.engine import RecognizerOptions, WhisperRecognizer
from livetranslate.transcribe.stage import TranscribeStage

pytestmark = [pytest.mark.broker, pytest.mark.model]

Pcm = npt.NDArray[np.int16]

LIBRIVOX = Path(__file__).parents[3] / "tests" / "data" / "librivox"
PIECE_SAMPLES = v1.SAMPLE_RATE_HZ // 5
"""200 ms, the VAD stage's default piece."""

TIMEOUT_S = 30.0
SENTINEL = "sentinel"


@dataclass(frozen=True)
class Utterance:
    """One utterance as the VAD would cut it: its audio and where it starts in the session."""

    utterance_id: str
    samples: Pcm
    start_samples: int

    @property
    def start_s(self) -> float:
        return self.start_samples / v1.SAMPLE_RATE_HZ

    @property
    def end_s(self) -> float:
        return (self.start_samples + len(self.samples)) / v1.SAMPLE_RATE_HZ

    def pieces(self, session_id: str) -> Iterator[tuple[v1.SpeechAudioMeta, bytes]]:
        """The pieces, numbered from 0; the last one carries the tail and ``is_last``."""
        offsets = range(0, len(self.samples), PIECE_SAMPLES)
        for number, offset in enumerate(offsets):
            is_last = number == len(offsets) - 1
            meta = v1.SpeechAudioMeta(
                session_id=session_id,
                utterance_id=self.utterance_id,
                piece=number,
                offset_samples=self.start_samples + offset,
                utterance_start_samples=self.start_samples,
                is_last=is_last,
                speech_end_at=v1.utc_now() if is_last else None,
            )
            yield meta, self.samples[offset : offset + PIECE_SAMPLES].astype("<i2").tobytes()


def _recording(stem: str) -> Pcm:
    return decode_file(LIBRIVOX / f"sense_and_sensibility_01_austen_64kb-{stem}.wav")


def _reference(stem: str) -> list[str]:
    for line in (LIBRIVOX / "transcription.txt").read_text().splitlines():
        name, _, text = line.partition("\t")
        if name.endswith(stem):
            return text.split()
    raise KeyError(stem)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


class FinalsWatch:
    """Every final published for a set of sessions, duplicates included."""

    def __init__(self) -> None:
        self.finals: list[v1.Transcript] = []
        self._subscriptions: list[Subscription] = []

    async def start(self, client: Client, *session_ids: str) -> None:
        for session_id in session_ids:
            subject = subjects.transcript("final", session_id)
            self._subscriptions.append(await client.subscribe(subject, cb=self._on_msg))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    def of(self, session_id: str) -> list[v1.Transcript]:
        return [f for f in self.finals if f.session_id == session_id]

    async def wait_for(self, session_id: str, utterance_id: str) -> v1.Transcript:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for final in self.of(session_id):
                if final.utterance_id == utterance_id:
                    return final
            await asyncio.sleep(0.05)
        raise AssertionError(f"no final for {session_id}/{utterance_id} in {TIMEOUT_S} s")

    async def _on_msg(self, msg: Msg) -> None:
        self.finals.append(decode_as(v1.Transcript, msg.headers, msg.data))


async def _publish(client: Client, session_id: str, utterance: Utterance) -> None:
    for meta, pcm in utterance.pieces(session_id):
        await _publish_piece(client, meta, pcm)


async def _publish_piece(client: Client, meta: v1.SpeechAudioMeta, pcm: bytes) -> None:
    """Without a ``Nats-Msg-Id``: a piece published twice reaches the stage twice."""
    body, headers = encode_audio(meta, pcm)
    await client.jetstream().publish(subjects.audio_speech(meta.session_id), body, headers=headers)


async def _publish_in_real_time(client: Client, session_id: str, utterance: Utterance) -> None:
    """One piece per piece length of wall time, as the VAD sends them while someone speaks."""
    started = time.monotonic()
    for meta, pcm in utterance.pieces(session_id):
        ahead_s = (meta.offset_samples - utterance.start_samples) / v1.SAMPLE_RATE_HZ
        await asyncio.sleep(max(started + ahead_s - time.monotonic(), 0.0))
        await _publish_piece(client, meta, pcm)


async def _drain_through_sentinel(client: Client, watch: FinalsWatch) -> None:
    """Publish a silent utterance in a fresh session and wait for its final."""
    session_id = f"tr-sentinel-{uuid.uuid4().hex[:8]}"
    await watch.start(client, session_id)
    silence = Utterance(SENTINEL, np.zeros(PIECE_SAMPLES, dtype=np.int16), 0)
    await _publish(client, session_id, silence)
    await watch.wait_for(session_id, SENTINEL)


@contextlib.asynccontextmanager
async def _transcribe_running(url: str, recognizer: WhisperRecognizer) -> AsyncIterator[None]:
    runner = StageRunner(url, [TranscribeStage(recognizer=recognizer)])
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


async def _read_through_final(client: Client, session_id: str) -> list[v1.Transcript]:
    """A one-utterance session's partials and its final, in stream order."""
    subscription = await client.jetstream().subscribe(
        f"transcript.*.{session_id}", ordered_consumer=True
    )
    found: list[v1.Transcript] = []
    while not found or found[-1].kind != "final":
        msg = await subscription.next_msg(timeout=TIMEOUT_S)
        found.append(decode_as(v1.Transcript, msg.headers, msg.data))
    await subscription.unsubscribe()
    return found


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    return WhisperRecognizer(RecognizerOptions())


@dataclass(frozen=True)
class Finished:
    """What the stage published for a session of two utterances sent at once."""

    utterances: tuple[Utterance, ...]
    finals: list[v1.Transcript]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_utterances(nats_server: EmbeddedServer, recognizer: WhisperRecognizer) -> Finished:
    session_id = f"tr-{uuid.uuid4().hex[:12]}"
    first = Utterance("u00001", _recording("0880"), 8_000)
    second = Utterance("u00002", _recording("0930"), 8_000 + len(first.samples) + 16_000)
    client = await nats.connect(nats_server.url)
    watch = FinalsWatch()
    try:
        await watch.start(client, session_id)
        async with _transcribe_running(nats_server.url, recognizer):
            await _publish(client, session_id, first)
            await _publish(client, session_id, second)
            await watch.wait_for(session_id, second.utterance_id)
            await _drain_through_sentinel(client, watch)
        await watch.stop()
    finally:
        await client.drain()
    return Finished((first, second), watch.of(session_id))


def test_each_utterance_gets_exactly_one_final(two_utterances: Finished) -> None:
    ids = [final.utterance_id for final in two_utterances.finals]

    assert sorted(ids) == ["u00001", "u00002"]


def test_final_spans_its_utterance_in_session_time(two_utterances: Finished) -> None:
    for utterance, final in zip(two_utterances.utterances, _by_id(two_utterances), strict=True):
        assert final.start_s == pytest.approx(utterance.start_s)
        assert final.end_s == pytest.approx(utterance.end_s)


def test_final_words_lie_within_the_utterance_in_increasing_order(
    two_utterances: Finished,
) -> None:
    for utterance, final in zip(two_utterances.utterances, _by_id(two_utterances), strict=True):
        starts = [word.start_s for word in final.words]
        assert final.words, f"{final.utterance_id} has no words"
        assert starts == sorted(starts)
        for word in final.words:
            assert utterance.start_s <= word.start_s <= word.end_s <= utterance.end_s


def test_final_text_is_the_spoken_sentence_in_english(two_utterances: Finished) -> None:
    for stem, final in zip(("0880", "0930"), _by_id(two_utterances), strict=True):
        reference = _reference(stem)
        heard = set(_words(final.text))
        assert final.language == "en"
        assert len([word for word in reference if word in heard]) >= 0.6 * len(reference)
        assert _words(" ".join(word.text for word in final.words)) == _words(final.text)


def _by_id(finished: Finished) -> list[v1.Transcript]:
    return sorted(finished.finals, key=lambda final: final.utterance_id)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spoken_live(
    nats_server: EmbeddedServer, recognizer: WhisperRecognizer
) -> list[v1.Transcript]:
    """A 5 s sentence published at real-time pace; its transcripts in stream order."""
    session_id = f"tr-live-{uuid.uuid4().hex[:8]}"
    utterance = Utterance("u00001", _recording("0890"), 0)
    client = await nats.connect(nats_server.url)
    watch = FinalsWatch()
    try:
        await watch.start(client, session_id)
        async with _transcribe_running(nats_server.url, recognizer):
            await _publish_in_real_time(client, session_id, utterance)
            await watch.wait_for(session_id, utterance.utterance_id)
        await watch.stop()
        return await _read_through_final(client, session_id)
    finally:
        await client.drain()


def test_partials_arrive_before_the_final(spoken_live: list[v1.Transcript]) -> None:
    *before_final, final = spoken_live

    assert final.kind == "final"
    assert before_final, "no partial came before the final"


def test_revisions_increase_from_partial_to_partial_and_to_the_final(
    spoken_live: list[v1.Transcript],
) -> None:
    revisions = [transcript.revision for transcript in spoken_live]

    assert revisions == sorted(set(revisions))


def test_stable_text_of_successive_partials_only_grows(
    spoken_live: list[v1.Transcript],
) -> None:
    stable = [t.stable_text for t in spoken_live if t.kind == "partial"]

    for before, after in itertools.pairwise(stable):
        assert after.startswith(before)
    assert stable[-1], "no word of the sentence ever became stable"


async def test_last_piece_delivered_again_yields_one_final(
    nats_url: str, nats_client: Client, recognizer: WhisperRecognizer
) -> None:
    session_id = f"tr-dup-{uuid.uuid4().hex[:8]}"
    utterance = Utterance("u00001", _recording("0930"), 0)
    *_, (last_meta, last_pcm) = utterance.pieces(session_id)
    watch = FinalsWatch()
    await watch.start(nats_client, session_id)

    async with _transcribe_running(nats_url, recognizer):
        await _publish(nats_client, session_id, utterance)
        await _publish_piece(nats_client, last_meta, last_pcm)
        await watch.wait_for(session_id, utterance.utterance_id)
        # Once more after the final is out, as a redelivery after a lost ack would come.
        await _publish_piece(nats_client, last_meta, last_pcm)
        await _drain_through_sentinel(nats_client, watch)
    await watch.stop()

    assert [final.utterance_id for final in watch.of(session_id)] == ["u00001"]


async def test_final_after_a_restart_mid_utterance_covers_all_its_audio(
    nats_url: str, nats_client: Client, recognizer: WhisperRecognizer
) -> None:
    session_id = f"tr-restart-{uuid.uuid4().hex[:8]}"
    utterance = Utterance("u00001", _recording("0930"), 0)
    pieces = list(utterance.pieces(session_id))
    half = len(pieces) // 2
    watch = FinalsWatch()
    await watch.start(nats_client, session_id)

    async with _transcribe_running(nats_url, recognizer):
        for meta, pcm in pieces[:half]:
            await _publish_piece(nats_client, meta, pcm)
        await _first_partial(nats_client, session_id)
    async with _transcribe_running(nats_url, recognizer):
        for meta, pcm in pieces[half:]:
            await _publish_piece(nats_client, meta, pcm)
        final = await watch.wait_for(session_id, utterance.utterance_id)
        await _drain_through_sentinel(nats_client, watch)
    await watch.stop()

    heard = _words(final.text)
    assert [f.utterance_id for f in watch.of(session_id)] == [utterance.utterance_id]
    assert (final.start_s, final.end_s) == pytest.approx((utterance.start_s, utterance.end_s))
    assert heard[:2] == ["he", "might"]
    assert heard[-1] == "himself"
    reference = _reference("0930")
    assert len([word for word in reference if word in heard]) >= 0.75 * len(reference)


async def _first_partial(client: Client, session_id: str) -> v1.Transcript:
    """The first partial of a session: proof that the stage holds its first pieces."""
    subject = subjects.transcript("partial", session_id)
    subscription = await client.jetstream().subscribe(subject, ordered_consumer=True)
    msg = await subscription.next_msg(timeout=TIMEOUT_S)
    await subscription.unsubscribe()
    return decode_as(v1.Transcript, msg.headers, msg.data)


def test_each_partial_shows_its_stable_words_then_its_tail(
    spoken_live: list[v1.Transcript],
) -> None:
    for partial in spoken_live[:-1]:
        assert partial.text.startswith(partial.stable_text)


def test_the_final_differs_from_the_last_partial_only_in_the_tail(
    spoken_live: list[v1.Transcript],
) -> None:
    *partials, final = spoken_live
    stable = partials[-1].stable_text.split()

    assert final.text.split()[: len(stable)] == stable
    assert final.stable_text == final.text
