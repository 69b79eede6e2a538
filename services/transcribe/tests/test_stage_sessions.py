"""The transcribe stage across sessions: models, languages, load and what it withholds.

A scripted recogniser stands in for Whisper, so that what is tested is the
stage: which model a session gets, which language a transcript carries,
how partials thin out when decoding is slow, how drops are counted, and how
pieces that come out of order are put in place.
The stage runs on a real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from livetranslate.contracts import decode_as, encode_audio, subjects, v1
from livetranslate.streams import StageRunner
from livetranslate.streams.sessions import SessionStore
from livetranslate.transcribe.engine import (
    DropReason,
    Recognition,
    RecognitionJob,
    RecognizedWord,
    recognize_job,
)
from livetranslate.transcribe.stage import TranscribeSettings, TranscribeStage

pytestmark = [pytest.mark.broker]

PIECE_SAMPLES = v1.SAMPLE_RATE_HZ // 5
TIMEOUT_S = 20.0
LANGUAGE_MARKS = {1000: "en", 2000: "de"}
"""Scripted languages: an utterance's samples all hold one of these values."""


@dataclass
class ScriptedRecognizer:
    """Says ``text`` for every utterance after a set time; detects languages from marks."""

    text: str = "hello there world"
    partial_s: float = 0.0
    final_s: float = 0.0
    multilingual: bool = False
    dropped: DropReason | None = None
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def recognize(
        self,
        audio: npt.NDArray[np.float32],
        *,
        language: str | None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        draft: bool = False,
    ) -> Recognition:
        time.sleep(self.partial_s if draft else self.final_s)
        with self._lock:
            self.calls.append(("partial" if draft else "final", language))
        if self.dropped is not None:
            return Recognition(text="", language=language, dropped=self.dropped)
        words = tuple(
            RecognizedWord(word, 0.1 * index, 0.1 * index + 0.1, 0.9)
            for index, word in enumerate(self.text.split())
        )
        return Recognition(text=self.text, words=words, language=language or "en")

    def detect_language(self, audio: npt.NDArray[np.float32]) -> tuple[str, float]:
        mark = round(float(audio[0]) * 32768)
        return LANGUAGE_MARKS.get(mark, "en"), 0.95


def _pieces(
    session_id: str, utterance_id: str, samples: npt.NDArray[np.int16], start: int = 0
) -> Iterator[tuple[v1.SpeechAudioMeta, bytes]]:
    offsets = range(0, len(samples), PIECE_SAMPLES)
    for number, offset in enumerate(offsets):
        is_last = number == len(offsets) - 1
        meta = v1.SpeechAudioMeta(
            session_id=session_id,
            utterance_id=utterance_id,
            piece=number,
            offset_samples=start + offset,
            utterance_start_samples=start,
            is_last=is_last,
            speech_end_at=v1.utc_now() if is_last else None,
        )
        yield meta, samples[offset : offset + PIECE_SAMPLES].astype("<i2").tobytes()


async def _publish(
    client: Client,
    session_id: str,
    utterance_id: str,
    samples: npt.NDArray[np.int16],
    *,
    real_time: bool = False,
) -> None:
    for meta, pcm in _pieces(session_id, utterance_id, samples):
        if real_time:
            await asyncio.sleep(PIECE_SAMPLES / v1.SAMPLE_RATE_HZ)
            meta = meta.model_copy(update={"speech_end_at": v1.utc_now() if meta.is_last else None})
        body, headers = encode_audio(meta, pcm)
        await client.jetstream().publish(subjects.audio_speech(session_id), body, headers=headers)


def _marked(seconds: float, mark: int = 1000) -> npt.NDArray[np.int16]:
    return np.full(round(seconds * v1.SAMPLE_RATE_HZ), mark, dtype=np.int16)


class Transcripts:
    """Every transcript published for the sessions it watches."""

    def __init__(self) -> None:
        self.found: list[v1.Transcript] = []
        self._subscriptions: list[object] = []

    async def start(self, client: Client) -> None:
        self._subscriptions.append(await client.subscribe("transcript.>", cb=self._on_msg))

    def finals(self, session_id: str) -> list[v1.Transcript]:
        return [t for t in self.found if t.session_id == session_id and t.kind == "final"]

    def partials(self, session_id: str) -> list[v1.Transcript]:
        return [t for t in self.found if t.session_id == session_id and t.kind == "partial"]

    async def wait_for_finals(self, session_id: str, count: int) -> list[v1.Transcript]:
        deadline = time.monotonic() + TIMEOUT_S
        while len(self.finals(session_id)) < count:
            assert time.monotonic() < deadline, f"{session_id}: fewer than {count} finals"
            await asyncio.sleep(0.05)
        return self.finals(session_id)

    async def _on_msg(self, msg: Msg) -> None:
        self.found.append(decode_as(v1.Transcript, msg.headers, msg.data))


@contextlib.asynccontextmanager
async def _running(url: str, client: Client, stage: TranscribeStage) -> AsyncIterator[Transcripts]:
    transcripts = Transcripts()
    await transcripts.start(client)
    runner = StageRunner(url, [stage])
    await runner.start()
    try:
        yield transcripts
    finally:
        await runner.stop()


async def _configure(
    client: Client, *, model: str | None = None, source_language: str | None = None
) -> str:
    session_id = f"ts-{uuid.uuid4().hex[:10]}"
    store = SessionStore(client)
    await store.open()
    config = v1.SessionConfig(session_id=session_id, model=model, source_language=source_language)
    await store.put(config)
    return session_id


def _stage(
    recognizer: ScriptedRecognizer,
    load_model: Callable[[str | None], ScriptedRecognizer] | None = None,
    **settings: object,
) -> TranscribeStage:
    return TranscribeStage(
        TranscribeSettings(**settings),  # type: ignore[arg-type]
        recognizer=recognizer,
        load_model=load_model,
    )


async def test_a_session_gets_the_model_its_config_names_loaded_once(
    nats_url: str, nats_client: Client
) -> None:
    loads: list[str | None] = []

    def load(name: str | None) -> ScriptedRecognizer:
        loads.append(name)
        return ScriptedRecognizer(text=f"said by {name}")

    stage = _stage(ScriptedRecognizer(text="said by default"), load)
    plain = await _configure(nats_client)
    first = await _configure(nats_client, model="other")
    second = await _configure(nats_client, model="other")

    async with _running(nats_url, nats_client, stage) as transcripts:
        for session_id in (plain, first, second):
            await _publish(nats_client, session_id, "u00001", _marked(1.0))
        finals = [(await transcripts.wait_for_finals(s, 1))[0] for s in (plain, first, second)]

    assert [final.text for final in finals] == ["said by default", *["said by other"] * 2]
    assert loads == ["other"]


async def test_a_model_that_cannot_load_gives_finals_dropped_with_the_reason(
    nats_url: str, nats_client: Client
) -> None:
    def load(name: str | None) -> ScriptedRecognizer:
        raise OSError(f"no model {name}")

    stage = _stage(ScriptedRecognizer(), load)
    session_id = await _configure(nats_client, model="missing")

    async with _running(nats_url, nats_client, stage) as transcripts:
        await _publish(nats_client, session_id, "u00001", _marked(1.0))
        (final,) = await transcripts.wait_for_finals(session_id, 1)

    assert (final.text, final.dropped) == ("", "model_unavailable")
    stats = stage.session_stats(session_id)
    assert stats is not None and stats.finals_dropped == {"model_unavailable": 1}


async def test_a_fixed_language_reaches_the_recogniser_and_every_transcript(
    nats_url: str, nats_client: Client
) -> None:
    recognizer = ScriptedRecognizer(multilingual=True)
    stage = _stage(recognizer)
    session_id = await _configure(nats_client, source_language="pt")

    async with _running(nats_url, nats_client, stage) as transcripts:
        await _publish(nats_client, session_id, "u00001", _marked(3.0, 2000), real_time=True)
        await transcripts.wait_for_finals(session_id, 1)

    assert {language for _, language in recognizer.calls} == {"pt"}
    assert {t.language for t in transcripts.found if t.session_id == session_id} == {"pt"}


async def test_a_detected_language_switches_only_after_two_long_utterances(
    nats_url: str, nats_client: Client
) -> None:
    stage = _stage(ScriptedRecognizer(multilingual=True), language_min_detect_s=2.0)
    session_id = await _configure(nats_client)
    spoken = [(3.0, 1000), (3.0, 2000), (1.0, 2000), (3.0, 1000), (3.0, 2000), (3.0, 2000)]

    async with _running(nats_url, nats_client, stage) as transcripts:
        for number, (seconds, mark) in enumerate(spoken, start=1):
            await _publish(nats_client, session_id, f"u{number:05d}", _marked(seconds, mark))
            await transcripts.wait_for_finals(session_id, number)
        finals = transcripts.finals(session_id)

    assert [final.language for final in finals] == ["en", "en", "en", "en", "en", "de"]


async def test_withheld_finals_are_counted_by_reason(nats_url: str, nats_client: Client) -> None:
    stage = _stage(ScriptedRecognizer(dropped="low_confidence"))
    session_id = await _configure(nats_client)

    async with _running(nats_url, nats_client, stage) as transcripts:
        for number in (1, 2):
            await _publish(nats_client, session_id, f"u0000{number}", _marked(1.0))
        finals = await transcripts.wait_for_finals(session_id, 2)

    stats = stage.session_stats(session_id)
    assert [final.dropped for final in finals] == ["low_confidence"] * 2
    assert all(final.words == () for final in finals)
    assert stats is not None and stats.finals_dropped == {"low_confidence": 2}


async def test_partials_thin_out_under_load_while_finals_keep_their_pace(
    nats_url: str, nats_client: Client
) -> None:
    sessions = 5
    # One decode at a time: the worker's whole capacity is one slot.
    stage = _stage(
        ScriptedRecognizer(partial_s=0.25, final_s=0.05), partial_load_max=0.6, batch_max=1
    )
    session_ids = [await _configure(nats_client) for _ in range(sessions)]

    async with _running(nats_url, nats_client, stage) as transcripts:
        await asyncio.gather(
            *(_publish(nats_client, s, "u00001", _marked(6.0), real_time=True) for s in session_ids)
        )
        finals = [(await transcripts.wait_for_finals(s, 1))[0] for s in session_ids]

    latencies_s = [
        (final.published_at - final.speech_end_at).total_seconds()
        for final in finals
        if final.speech_end_at is not None
    ]
    intervals_s = [
        (later.published_at - earlier.published_at).total_seconds()
        for s in session_ids
        for earlier, later in itertools.pairwise(transcripts.partials(s))
    ]
    # Unthinned, five sessions would want five 0.25 s partials a second: more than
    # the worker has. Stretched, they take 60 %: about one every 2 s per utterance.
    assert statistics.median(intervals_s) >= 1.5
    # A final waits for at most the partial being decoded (0.25 s) and its own 0.05 s.
    assert max(latencies_s) <= 0.8


@dataclass
class BatchingRecognizer(ScriptedRecognizer):
    """Records how many utterances each call recognised together."""

    batches: list[tuple[str, int]] = field(default_factory=list)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8))

    def submit_many(self, jobs: Sequence[RecognitionJob]) -> list[Future[Recognition]]:
        kind = "partial" if jobs[0].draft else "final"
        with self._lock:
            self.batches.append((kind, len(jobs)))
        return [self.pool.submit(recognize_job, self, job) for job in jobs]


@pytest.mark.parametrize("batch_max", [1, 3])
async def test_finals_ready_at_once_are_recognised_together_up_to_batch_max(
    nats_url: str, nats_client: Client, batch_max: int
) -> None:
    # The sessions' model loads for a second: their finals close meanwhile and
    # are all ready when it is.
    recognizer = BatchingRecognizer()

    def load(name: str | None) -> BatchingRecognizer:
        time.sleep(1.0)
        return recognizer

    stage = _stage(BatchingRecognizer(), load, batch_max=batch_max, min_partial_audio_s=60.0)
    session_ids = [await _configure(nats_client, model="slow") for _ in range(4)]

    async with _running(nats_url, nats_client, stage) as transcripts:
        await asyncio.gather(
            *(_publish(nats_client, s, "u00001", _marked(1.0)) for s in session_ids)
        )
        for session_id in session_ids:
            await transcripts.wait_for_finals(session_id, 1)

    sizes = [size for kind, size in recognizer.batches if kind == "final"]
    assert sum(sizes) == 4
    assert sizes[0] == batch_max
    assert max(sizes) <= batch_max


@dataclass
class OverlapRecognizer(ScriptedRecognizer):
    """Records the most partials and the most decodes that ran at once."""

    running: Counter[str] = field(default_factory=Counter)
    most: Counter[str] = field(default_factory=Counter)

    def recognize(
        self,
        audio: npt.NDArray[np.float32],
        *,
        language: str | None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        draft: bool = False,
    ) -> Recognition:
        kind = "partial" if draft else "final"
        with self._lock:
            self.running[kind] += 1
            self.most[kind] = max(self.most[kind], self.running[kind])
            self.most["all"] = max(self.most["all"], self.running.total())
        try:
            return super().recognize(
                audio,
                language=language,
                prompt=prompt,
                word_timestamps=word_timestamps,
                draft=draft,
            )
        finally:
            with self._lock:
                self.running[kind] -= 1


async def test_partials_leave_a_slot_to_finals(nats_url: str, nats_client: Client) -> None:
    recognizer = OverlapRecognizer(partial_s=0.3, final_s=0.3)
    stage = _stage(recognizer, batch_max=3)
    session_ids = [await _configure(nats_client) for _ in range(4)]

    async with _running(nats_url, nats_client, stage) as transcripts:
        await asyncio.gather(
            *(_publish(nats_client, s, "u00001", _marked(3.0), real_time=True) for s in session_ids)
        )
        for session_id in session_ids:
            await transcripts.wait_for_finals(session_id, 1)

    # Four sessions want partials all the time: they get two of the three slots.
    assert recognizer.most["partial"] == 2
    assert recognizer.most["all"] == 3


@dataclass
class ListeningRecognizer(ScriptedRecognizer):
    """Keeps the audio of every final it decodes, as the stage's samples."""

    heard: list[npt.NDArray[np.int16]] = field(default_factory=list)

    def recognize(
        self,
        audio: npt.NDArray[np.float32],
        *,
        language: str | None,
        prompt: str | None = None,
        word_timestamps: bool = True,
        draft: bool = False,
    ) -> Recognition:
        if not draft:
            self.heard.append(np.round(audio * 32768).astype(np.int16))
        return super().recognize(
            audio, language=language, prompt=prompt, word_timestamps=word_timestamps, draft=draft
        )


async def _publish_pieces(
    client: Client, pieces: list[tuple[v1.SpeechAudioMeta, bytes]], numbers: list[int]
) -> None:
    for number in numbers:
        meta, pcm = pieces[number]
        body, headers = encode_audio(meta, pcm)
        await client.jetstream().publish(
            subjects.audio_speech(meta.session_id), body, headers=headers
        )


async def test_pieces_out_of_order_are_put_in_place_before_the_final(
    nats_url: str, nats_client: Client
) -> None:
    recognizer = ListeningRecognizer()
    session_id = await _configure(nats_client)
    samples = np.arange(6 * PIECE_SAMPLES, dtype=np.int16)
    pieces = list(_pieces(session_id, "u00001", samples))

    async with _running(nats_url, nats_client, _stage(recognizer)) as transcripts:
        # As after a restart: the pieces kept by the stage before come back last.
        await _publish_pieces(nats_client, pieces, [3, 4, 5, 0, 1, 2])
        (final,) = await transcripts.wait_for_finals(session_id, 1)

    assert final.end_s == pytest.approx(len(samples) / v1.SAMPLE_RATE_HZ)
    assert np.array_equal(recognizer.heard[-1], samples)


async def test_a_piece_that_never_comes_is_skipped_after_a_wait(
    nats_url: str, nats_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("livetranslate.transcribe.stage.MISSING_PIECE_WAIT_S", 0.5)
    recognizer = ListeningRecognizer()
    session_id = await _configure(nats_client)
    samples = np.arange(4 * PIECE_SAMPLES, dtype=np.int16)
    pieces = list(_pieces(session_id, "u00001", samples))

    async with _running(nats_url, nats_client, _stage(recognizer)) as transcripts:
        await _publish_pieces(nats_client, pieces, [0, 2, 3])
        (final,) = await transcripts.wait_for_finals(session_id, 1)

    without_second = np.concatenate([samples[:PIECE_SAMPLES], samples[2 * PIECE_SAMPLES :]])
    assert final.end_s == pytest.approx(len(without_second) / v1.SAMPLE_RATE_HZ)
    assert np.array_equal(recognizer.heard[-1], without_second)
