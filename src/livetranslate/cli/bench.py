"""``livetranslate bench``: streaming transcription measured through the pipeline.

How a run goes: an embedded broker, the VAD and transcribe stages in this
process, and for each session a producer that publishes its audio to
``audio.ingest.<session>`` at real-time pace, as a microphone would. A
session plays every file given, one after the other with a pause between
them; with several sessions each plays them in a rotated order from a
different start offset, so that their utterances do not all end together.
Everything the stages publish on ``vad.<s>`` and ``transcript.*.<s>`` is
collected with the time it was published.

What is measured:

- final latency: the VAD's speech-end decision (``speech_end_at``) to the
  final's ``published_at``; first-partial latency: the VAD's speech-start
  event to the utterance's first partial; the interval between partials;
- partial rewrite rate: of the words partials showed as stable, the share a
  later revision of the same utterance changed; beside it, the share the
  recogniser's later hypotheses disagreed with (the stage keeps them);
- WER of the finals against each file's reference after normalisation, each
  final counted towards the file its audio lies in;
- CPU seconds of the transcribe worker per second of the files' audio (the
  pauses the benchmark inserts cost it nothing and are not counted): the CPU
  time of every thread of this process but the event loop's, which runs the
  VAD, the NATS clients and the producers (Linux; elsewhere the whole
  process, an upper bound);
- the anchor: faster-whisper's own ``transcribe()`` of each whole file with
  the same model and decoding options, in the same process after the
  pipeline has stopped, and the ratios of the two;
- what the stage withheld, by reason (its ``SessionStats``), the resident
  memory of this process (sampled every 10 s; it holds the VAD and the
  collected transcripts too), and the first session's text per file beside
  the offline text.

The LibriVox set is 71 words: one word is 0.014 of WER, 0.14 of its ratio.
Runs with several sessions cut the same files at other places and give a
steadier WER.

``--long-minutes`` builds one long session by repeating the files with
pauses of 2 to 30 s; pauses beyond ``paced_pause_s`` are published as fast
as the broker takes them (the transcribe stage has nothing to do then, and
latencies are measured from the VAD's own clock), so a 30-minute session
takes about 13 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import nats
import numpy as np
import numpy.typing as npt
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ConfigDict, Field

from livetranslate.cli.pipeline import broker
from livetranslate.contracts import ContractError, decode, subjects, v1
from livetranslate.streams import Publisher, StageRunner
from livetranslate.streams.sessions import SessionStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from livetranslate.streams import Stage
    from livetranslate.transcribe.engine import WhisperRecognizer
    from livetranslate.transcribe.stage import SessionStats, TranscribeStage
    from livetranslate.vad.stage import VadStage

__all__ = ["TARGETS", "BenchOptions", "print_report", "run"]

Pcm = npt.NDArray[np.int16]
SAMPLE_RATE_HZ: Final = v1.SAMPLE_RATE_HZ
LONG_PAUSES_S: Final = (2.0, 5.0, 10.0, 20.0, 30.0)
"""Pauses a long session cycles through between recordings."""
MAX_SESSIONS: Final = 64
"""Most simultaneous sessions a run plays: each holds its recordings and traces in
memory, and one worker sustains about 8 on 2 cores."""

WINDOW_S: Final = 300.0
"""A long session compares its first and last this many seconds."""

TARGETS: Final[dict[str, tuple[str, float]]] = {
    "final_latency_s.p50": ("<=", 0.8),
    "final_latency_s.p95": ("<=", 1.5),
    "first_partial_latency_s.p50": ("<=", 1.0),
    "wer_ratio": ("<=", 1.1),
    "cpu_ratio": ("<=", 1.5),
    "sustained_sessions": (">=", 6),
    "long_session.p95_ratio": ("<=", 1.2),
}
"""Targets for tiny.en int8 on 2 cores, shown beside the figures."""


class BenchOptions(BaseModel):
    """What a benchmark run plays, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: tuple[Path, ...] = Field(min_length=1, description="Recordings to play.")
    sessions: tuple[Annotated[int, Field(ge=1, le=MAX_SESSIONS)], ...] = Field(
        default=(1,), min_length=1, description="Simultaneous sessions; several give a curve."
    )
    pause_s: float = Field(default=2.0, ge=0.0, description="Silence between two recordings.")
    lead_s: float = Field(default=0.5, ge=0.0, description="Silence before the first one.")
    long_minutes: float | None = Field(
        default=None, gt=0, description="Also run one session this long (files repeated)."
    )
    paced_pause_s: float = Field(
        default=3.0,
        ge=1.0,
        description="Long session only: pause published in real time; the rest is fast.",
    )
    language: str | None = Field(default=None, description="Session language; None detects.")
    model: str | None = Field(default=None, description="Model; None: the stage's default.")
    chunk_ms: int = Field(default=100, ge=20, le=100, description="Producer chunk length.")
    sustain_p95_s: float = Field(
        default=2.0, gt=0, description="Final latency p95 a sustained session count keeps."
    )
    finish_timeout_s: float = Field(
        default=120.0, gt=0, description="Wait for the last finals after the audio ends."
    )


@dataclass(frozen=True)
class Recording:
    """One file: its samples and, when one was found, its reference words."""

    path: Path
    samples: Pcm
    reference: str | None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class Placed:
    """A recording inside a session's audio, in session samples."""

    recording: Recording
    start_samples: int

    @property
    def end_samples(self) -> int:
        return self.start_samples + len(self.recording.samples)


@dataclass(frozen=True)
class Timeline:
    """One session's audio and where each recording lies in it."""

    samples: Pcm
    placed: tuple[Placed, ...]
    paced: tuple[tuple[int, int], ...]
    """Sample ranges published in real time; the rest (long pauses) goes at once."""

    @property
    def recordings_s(self) -> float:
        return sum(p.recording.duration_s for p in self.placed)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


@dataclass
class UtteranceTrace:
    """What was published about one utterance, as it came."""

    start_samples: int = 0
    end_samples: int | None = None
    speech_start_at: datetime | None = None
    speech_end_at: datetime | None = None
    partials: list[v1.Transcript] = field(default_factory=list)
    final: v1.Transcript | None = None


@dataclass
class SessionTrace:
    """One session's utterances and whether the VAD has closed it."""

    utterances: dict[str, UtteranceTrace] = field(default_factory=dict)
    expected: int | None = None

    @property
    def done(self) -> bool:
        finals = sum(1 for u in self.utterances.values() if u.final is not None)
        return self.expected is not None and finals >= self.expected


# -- recordings and timelines -------------------------------------------------------


def load_recordings(files: Sequence[Path]) -> list[Recording]:
    """Decode each file and find its reference text, if it has one."""
    from livetranslate.ingest.decode import decode_file

    return [Recording(path, decode_file(path), reference_for(path)) for path in files]


def reference_for(path: Path) -> str | None:
    """The reference words of ``path``: ``<stem>.txt`` beside it, or its line in a
    ``transcription.txt`` there (``<stem><TAB><words>``, as in tests/data/librivox)."""
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        return sidecar.read_text().strip()
    listing = path.parent / "transcription.txt"
    if listing.is_file():
        for line in listing.read_text().splitlines():
            stem, _, text = line.partition("\t")
            if stem == path.stem:
                return text.strip()
    return None


def timeline(
    recordings: Sequence[Recording],
    pauses_s: Sequence[float],
    lead_s: float,
    *,
    until_s: float | None = None,
    paced_pause_s: float | None = None,
) -> Timeline:
    """Recordings back to back with pauses (cycling ``pauses_s``), repeated until ``until_s``.

    With ``paced_pause_s``, only that much of each pause is paced in real time.
    """
    parts: list[Pcm] = [_silence(lead_s)]
    placed: list[Placed] = []
    paced: list[tuple[int, int]] = []
    position = len(parts[0])
    for index, recording in enumerate(_cycle(recordings, until_s)):
        pause = _silence(pauses_s[index % len(pauses_s)])
        placed.append(Placed(recording, position))
        parts += [recording.samples, pause]
        paced_pause = len(pause) if paced_pause_s is None else _samples(paced_pause_s)
        paced.append((position, position + len(recording.samples) + min(paced_pause, len(pause))))
        position += len(recording.samples) + len(pause)
        if until_s is not None and position >= until_s * SAMPLE_RATE_HZ:
            break
    if paced_pause_s is None:
        paced = [(0, position)]

    return Timeline(np.concatenate(parts), tuple(placed), tuple(paced))


def _cycle(recordings: Sequence[Recording], until_s: float | None) -> Iterator[Recording]:
    while True:
        yield from recordings
        if until_s is None:
            return


def _silence(seconds: float) -> Pcm:
    return np.zeros(_samples(seconds), dtype=np.int16)


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE_HZ)


def _rotated(recordings: Sequence[Recording], by: int) -> list[Recording]:
    shift = by % len(recordings)
    return [*recordings[shift:], *recordings[:shift]]


# -- the producer -------------------------------------------------------------------


async def play(publisher: Publisher, session_id: str, line: Timeline, chunk_ms: int) -> None:
    """Publish a session's audio as a live source would: paced ranges in real time."""
    subject = subjects.audio_ingest(session_id)
    start = v1.SessionEvent(session_id=session_id, kind="start")
    await publisher.publish(start, subject, msg_id=f"{session_id}:start")
    chunk = _samples(chunk_ms / 1000)
    clock = _PacedClock(line.paced, time.monotonic())
    for seq, offset in enumerate(range(0, len(line.samples), chunk)):
        await _sleep_until(clock.due(offset))
        pcm = line.samples[offset : offset + chunk].astype("<i2").tobytes()
        meta = v1.AudioChunkMeta(session_id=session_id, seq=seq, offset_samples=offset)
        await publisher.publish_audio(meta, pcm, subject, msg_id=f"{session_id}:chunk:{seq}")
    end = v1.SessionEvent(session_id=session_id, kind="end", total_samples=len(line.samples))
    await publisher.publish(end, subject, msg_id=f"{session_id}:end")


class _PacedClock:
    """When each sample is due: paced ranges take their own length, the rest no time."""

    def __init__(self, paced: Sequence[tuple[int, int]], started: float) -> None:
        self._paced = paced
        self._started = started

    def due(self, offset: int) -> float:
        before = sum(min(end, offset) - start for start, end in self._paced if start < offset)
        return self._started + before / SAMPLE_RATE_HZ


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# -- the collector ------------------------------------------------------------------


class Collector:
    """Every speech event and transcript of the benchmark's sessions, as published.

    Plain NATS subscriptions: they see each publish as it happens.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sessions: dict[str, SessionTrace] = {}
        self._subscriptions: list[Subscription] = []

    async def start(self, client: Client) -> None:
        for subject in ("vad.>", "transcript.>"):
            self._subscriptions.append(await client.subscribe(subject, cb=self._on_msg))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def wait(self, session_ids: Sequence[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.trace(s).done for s in session_ids):
                return
            await asyncio.sleep(0.1)

    def trace(self, session_id: str) -> SessionTrace:
        return self.sessions.setdefault(session_id, SessionTrace())

    async def _on_msg(self, msg: Msg) -> None:
        try:
            contract = decode(msg.headers, msg.data).contract
        except ContractError:
            return
        session_id = getattr(contract, "session_id", "")
        if not session_id.startswith(self.prefix):
            return
        if isinstance(contract, v1.VadEvent):
            self._on_vad(self.trace(session_id), contract)
        elif isinstance(contract, v1.Transcript):
            self._on_transcript(self.trace(session_id), contract)

    @staticmethod
    def _on_vad(trace: SessionTrace, event: v1.VadEvent) -> None:
        if event.kind == "session_end":
            trace.expected = event.utterances
            return
        utterance = trace.utterances.setdefault(event.utterance_id, UtteranceTrace())
        utterance.start_samples = event.start_samples
        if event.kind == "speech_start":
            utterance.speech_start_at = event.at
        else:
            utterance.speech_end_at = event.at
            utterance.end_samples = event.end_samples

    @staticmethod
    def _on_transcript(trace: SessionTrace, transcript: v1.Transcript) -> None:
        utterance = trace.utterances.setdefault(transcript.utterance_id, UtteranceTrace())
        if transcript.kind == "partial":
            utterance.partials.append(transcript)
        else:
            utterance.final = transcript


# -- figures ------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50 and p95 (linear interpolation) and how many values there were."""
    if not values:
        return {"p50": None, "p95": None, "count": 0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "count": len(values),
    }


def final_latencies_s(utterances: Sequence[UtteranceTrace]) -> list[float]:
    """From the VAD's speech-end decision to the final's publication."""
    found = []
    for utterance in utterances:
        final = utterance.final
        ended = final.speech_end_at if final and final.speech_end_at else utterance.speech_end_at
        if final is not None and ended is not None:
            found.append((final.published_at - ended).total_seconds())
    return found


def first_partial_latencies_s(utterances: Sequence[UtteranceTrace]) -> list[float]:
    """From the VAD's speech-start event to the utterance's first partial."""
    return [
        (u.partials[0].published_at - u.speech_start_at).total_seconds()
        for u in utterances
        if u.partials and u.speech_start_at is not None
    ]


def partial_intervals_s(utterances: Sequence[UtteranceTrace]) -> list[float]:
    """Time between consecutive partials of the same utterance."""
    found = []
    for utterance in utterances:
        times = [p.published_at for p in utterance.partials]
        found += [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    return found


def rewritten_stable_words(utterance: UtteranceTrace) -> tuple[int, int]:
    """(words shown as stable, of them changed by a later revision) for one utterance.

    A stable word is changed when a later revision's text (a partial's, or the
    final's) no longer has it at its place, compared without case or punctuation.
    """
    revisions = [*utterance.partials, *([utterance.final] if utterance.final else [])]
    shown = 0
    changed: set[int] = set()
    for index, revision in enumerate(revisions):
        stable = normalise(revision.stable_text).split() if revision.kind == "partial" else []
        shown = max(shown, len(stable))
        for later in revisions[index + 1 :]:
            words = normalise(later.text).split()
            changed.update(
                i for i, word in enumerate(stable) if i >= len(words) or words[i] != word
            )
    return shown, len(changed)


def normalise(text: str) -> str:
    """Lower case, no punctuation, "mr." spelt out: how the references are written."""
    text = re.sub(r"[^a-z' ]+", " ", text.lower().replace("mr.", "mister"))
    return " ".join(text.replace("'", "").split())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words) between the two after normalisation: WER's parts."""
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, start=1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1], len(ref)


def heard_texts(line: Timeline, trace: SessionTrace) -> list[str]:
    """Per recording of a session, the text of the finals whose audio lies in it.

    Each final counts towards the recording its middle lies in (or is nearest to).
    """
    heard: dict[int, list[v1.Transcript]] = {}
    for utterance in trace.utterances.values():
        if utterance.final is not None and utterance.final.text:
            middle = _samples((utterance.final.start_s + utterance.final.end_s) / 2)
            heard.setdefault(_nearest(line.placed, middle), []).append(utterance.final)
    return [
        " ".join(f.text for f in sorted(heard.get(index, []), key=lambda f: f.start_s))
        for index in range(len(line.placed))
    ]


def session_word_errors(line: Timeline, trace: SessionTrace) -> tuple[int, int]:
    """Edits and reference words over the recordings of a session that have a reference."""
    edits = words = 0
    for placed, text in zip(line.placed, heard_texts(line, trace), strict=True):
        if placed.recording.reference is not None:
            e, w = word_errors(placed.recording.reference, text)
            edits, words = edits + e, words + w
    return edits, words


def _nearest(placed: Sequence[Placed], sample: int) -> int:
    def distance(item: Placed) -> int:
        return max(item.start_samples - sample, sample - item.end_samples, 0)

    return min(range(len(placed)), key=lambda index: distance(placed[index]))


# -- CPU and memory -----------------------------------------------------------------


def thread_cpu_s() -> dict[int, float]:
    """CPU seconds of each live thread of this process, by native id (Linux); else {}."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in tasks.iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


class WorkerCpu:
    """CPU time of every thread but the event loop's, from ``start`` to ``stop``.

    The event loop runs the VAD, the NATS clients and the producers; the
    transcribe stage's worker thread, CTranslate2's threads and numpy's
    helpers are the rest.
    """

    def __init__(self) -> None:
        self._loop_thread = threading.get_native_id()
        self._before: dict[int, float] = {}
        self._process_before = 0.0
        self.cpu_s = 0.0
        self.scope = "threads" if thread_cpu_s() else "process"

    def start(self) -> None:
        self._before = thread_cpu_s()
        self._process_before = time.process_time()

    def stop(self) -> float:
        after = thread_cpu_s()
        if self.scope == "process":
            self.cpu_s = time.process_time() - self._process_before
        else:
            self.cpu_s = sum(
                cpu - self._before.get(tid, 0.0)
                for tid, cpu in after.items()
                if tid != self._loop_thread
            )
        return self.cpu_s


async def _sample_rss(samples: list[float | None], every_s: float = 10.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        samples.append(rss_mb())


def _rss_figures(samples: Sequence[float | None]) -> dict[str, float | None]:
    """Resident memory at the start and end of a run, and the most it reached."""
    known = [sample for sample in samples if sample is not None]
    return {
        "start": samples[0],
        "end": samples[-1],
        "max": max(known, default=None),
    }


def rss_mb() -> float | None:
    """Resident memory of this process in MiB (Linux); None elsewhere."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


# -- runs ---------------------------------------------------------------------------


@dataclass
class _Pipeline:
    """The broker, the stages and a client, for the length of a benchmark."""

    url: str
    runner: StageRunner
    client: Client
    publisher: Publisher
    sessions: SessionStore
    collector: Collector


async def run(options: BenchOptions, into: dict[str, Any]) -> None:
    """Run the benchmark that ``options`` describes; the report is written into ``into``."""
    recordings = await asyncio.to_thread(load_recordings, options.files)
    recognizer, stage, vad = _stages(options)
    await asyncio.to_thread(_warm_up, recognizer, recordings[0])
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    runs: list[dict[str, Any]] = []
    long_run: dict[str, Any] | None = None
    async with broker(None, None) as url, _pipeline(url, [vad, stage], prefix) as pipeline:
        for count in options.sessions:
            lines = [
                timeline(_rotated(recordings, i), [options.pause_s], _lead_s(options, i))
                for i in range(count)
            ]
            runs.append(await _measure(pipeline, stage, lines, f"{prefix}-n{count}", options))
        if options.long_minutes:
            line = timeline(
                recordings,
                LONG_PAUSES_S,
                options.lead_s,
                until_s=options.long_minutes * 60,
                paced_pause_s=options.paced_pause_s,
            )
            long_run = await _measure(pipeline, stage, [line], f"{prefix}-long", options)
    decodes = _decode_counts(recognizer)
    offline = await asyncio.to_thread(_offline_anchor, recognizer, recordings, options.language)
    into.update(_report(options, runs, long_run, offline))
    into["decodes"] = decodes


def _decode_counts(recognizer: WhisperRecognizer) -> dict[str, int]:
    """Decodes beyond one per utterance, and shared encoder calls, over every run."""
    return {
        "second_opinions": recognizer.second_opinions,
        "full_window_retries": recognizer.full_window_retries,
        "batched_encodes": recognizer.batched_encodes,
    }


def _stages(options: BenchOptions) -> tuple[WhisperRecognizer, TranscribeStage, VadStage]:
    from livetranslate.streams.settings import load
    from livetranslate.transcribe.engine import WhisperRecognizer
    from livetranslate.transcribe.stage import TranscribeSettings, TranscribeStage
    from livetranslate.vad.stage import VadSettings, VadStage

    settings = load(TranscribeSettings)
    if options.model is not None:
        settings = settings.model_copy(update={"model": options.model})
    recognizer = WhisperRecognizer(settings.recognizer_options())
    stage = TranscribeStage(settings, recognizer=recognizer)

    return recognizer, stage, VadStage(load(VadSettings))


def _warm_up(recognizer: WhisperRecognizer, recording: Recording) -> None:
    """One decode of each kind first: CTranslate2 starts its threads on the first."""
    audio = recording.samples.astype(np.float32) / 32768.0
    recognizer.recognize(audio, language=None, word_timestamps=False, draft=True)
    recognizer.recognize(audio, language=None)


def _lead_s(options: BenchOptions, index: int) -> float:
    """Sessions start apart, spread over about three seconds."""
    return options.lead_s + (index * 0.61) % 3.0


@contextlib.asynccontextmanager
async def _pipeline(url: str, stages: list[Stage], prefix: str) -> AsyncIterator[_Pipeline]:
    runner = StageRunner(url, stages)
    await runner.start()
    client = await nats.connect(url)
    collector = Collector(prefix)
    await collector.start(client)
    sessions = SessionStore(client)
    await sessions.open()
    try:
        yield _Pipeline(url, runner, client, runner.publisher, sessions, collector)
    finally:
        await collector.stop()
        await client.drain()
        await runner.stop()


async def _measure(
    pipeline: _Pipeline,
    stage: TranscribeStage,
    lines: Sequence[Timeline],
    prefix: str,
    options: BenchOptions,
) -> dict[str, Any]:
    """Play ``lines`` as simultaneous sessions; their figures."""
    session_ids = [f"{prefix}-{index}" for index in range(len(lines))]
    for session_id in session_ids:
        config = v1.SessionConfig(
            session_id=session_id, source_language=options.language, model=options.model
        )
        await pipeline.sessions.put(config)
    cpu = WorkerCpu()
    memory = asyncio.create_task(_sample_rss(rss_samples := [rss_mb()]))
    cpu.start()
    started = time.monotonic()
    await asyncio.gather(
        *(
            play(pipeline.publisher, s, line, options.chunk_ms)
            for s, line in zip(session_ids, lines, strict=True)
        )
    )
    await pipeline.collector.wait(session_ids, options.finish_timeout_s)
    wall_s = time.monotonic() - started
    cpu_s = cpu.stop()
    memory.cancel()
    rss_samples.append(rss_mb())
    await asyncio.sleep(0.2)  # the stage retires a session just after its last final
    traces = [pipeline.collector.trace(s) for s in session_ids]
    stats = [stage.session_stats(s) for s in session_ids]
    figures = _figures(lines, traces, stats)
    figures.update(
        sessions=len(lines),
        wall_s=round(wall_s, 1),
        cpu_s=round(cpu_s, 2),
        cpu_scope=cpu.scope,
        cpu_s_per_audio_s=_ratio(cpu_s, sum(line.recordings_s for line in lines)),
        worker_cores_busy=_ratio(cpu_s, wall_s),
        rss_mb=_rss_figures(rss_samples),
    )
    if len(lines) == 1 and lines[0].duration_s > 2 * WINDOW_S:
        figures["windows"] = _windows(lines[0], traces[0])
        figures["rss_mb"]["every_10s"] = rss_samples
    else:
        figures["heard"] = dict(
            zip(
                (p.recording.path.name for p in lines[0].placed),
                heard_texts(lines[0], traces[0]),
                strict=True,
            )
        )
    return figures


def _figures(
    lines: Sequence[Timeline],
    traces: Sequence[SessionTrace],
    stats: Sequence[SessionStats | None],
) -> dict[str, Any]:
    utterances = [u for trace in traces for u in trace.utterances.values()]
    shown = changed = edits = words = 0
    for utterance in utterances:
        s, c = rewritten_stable_words(utterance)
        shown, changed = shown + s, changed + c
    for line, trace in zip(lines, traces, strict=True):
        e, w = session_word_errors(line, trace)
        edits, words = edits + e, words + w
    held = sum(s.stable_words for s in stats if s)
    disagreed = sum(s.stable_words_contradicted for s in stats if s)
    speech_s = sum(u.final.end_s - u.final.start_s for u in utterances if u.final)
    partials = sum(len(u.partials) for u in utterances)

    return {
        "utterances": len(utterances),
        "finals_missing": sum(1 for u in utterances if u.final is None),
        "final_latency_s": percentiles(final_latencies_s(utterances)),
        "first_partial_latency_s": percentiles(first_partial_latencies_s(utterances)),
        "utterances_without_partial": sum(1 for u in utterances if not u.partials),
        "partial_interval_s": percentiles(partial_intervals_s(utterances)),
        "partials_per_speech_s": _ratio(partials, speech_s),
        "partial_rewrite_rate": _ratio(changed, shown),
        "stable_words_shown": shown,
        "stable_disagreement_rate": _ratio(disagreed, held),
        "wer": _ratio(edits, words),
        "reference_words": words,
        "drops": _drops(stats),
    }


def _drops(stats: Sequence[SessionStats | None]) -> dict[str, dict[str, int]]:
    """Withheld text by reason, summed over sessions."""
    totals: dict[str, Counter[str]] = {"final": Counter(), "partial": Counter(), "cut": Counter()}
    for s in stats:
        if s is not None:
            totals["final"].update(s.finals_dropped)
            totals["partial"].update(s.partials_dropped)
            totals["cut"].update(s.cuts)
    return {kind: dict(counter) for kind, counter in totals.items()}


def _windows(line: Timeline, trace: SessionTrace) -> dict[str, Any]:
    """Final latency over a long session's first and last ``WINDOW_S`` of audio."""
    end_s = line.duration_s
    first = [u for u in trace.utterances.values() if u.start_samples < _samples(WINDOW_S)]
    last = [u for u in trace.utterances.values() if u.start_samples >= _samples(end_s - WINDOW_S)]
    first_p95 = percentiles(final_latencies_s(first))["p95"]
    last_p95 = percentiles(final_latencies_s(last))["p95"]
    return {
        "duration_s": round(end_s, 1),
        "first_5min_final_latency_s": percentiles(final_latencies_s(first)),
        "last_5min_final_latency_s": percentiles(final_latencies_s(last)),
        "p95_ratio": _ratio(last_p95, first_p95),
        # The recogniser's own time per final: when it grows as much as the
        # latency, the machine got slower (other load), not the pipeline longer.
        "first_5min_final_processing_s": percentiles(_processing_s(first)),
        "last_5min_final_processing_s": percentiles(_processing_s(last)),
        "finals": [
            [round(u.start_samples / SAMPLE_RATE_HZ, 1), round(latency_s, 3)]
            for u in sorted(trace.utterances.values(), key=lambda u: u.start_samples)
            for latency_s in final_latencies_s([u])
        ],
    }


def _processing_s(utterances: Sequence[UtteranceTrace]) -> list[float]:
    return [u.final.processing_s for u in utterances if u.final is not None and u.final.text]


def _offline_anchor(
    recognizer: WhisperRecognizer, recordings: Sequence[Recording], language: str | None
) -> dict[str, Any]:
    """faster-whisper's own transcribe() of each whole file: WER and CPU per audio second."""
    started = time.process_time()
    texts = {}
    for recording in recordings:
        audio = recording.samples.astype(np.float32) / 32768.0
        texts[recording.path.name] = recognizer.transcribe_plain(audio, language=language)
    cpu_s = time.process_time() - started
    # The stage decodes an unsure final again with a wider beam: the same
    # files offline with that beam show what the stream is measured against
    # at faster-whisper's best.
    wide_beam = recognizer.options.second_opinion_beam_size
    wide_texts = {
        recording.path.name: recognizer.transcribe_plain(
            recording.samples.astype(np.float32) / 32768.0, language=language, beam_size=wide_beam
        )
        for recording in recordings
    }
    audio_s = sum(recording.duration_s for recording in recordings)
    return {
        "wer": _corpus_wer(recordings, texts),
        "wide_beam": wide_beam,
        "wide_beam_wer": _corpus_wer(recordings, wide_texts),
        "cpu_s_per_audio_s": _ratio(cpu_s, audio_s),
        "texts": texts,
    }


def _corpus_wer(recordings: Sequence[Recording], texts: dict[str, str]) -> float | None:
    """Word errors over every recording with a reference, per reference word."""
    edits = words = 0
    for recording in recordings:
        if recording.reference is not None:
            e, w = word_errors(recording.reference, texts[recording.path.name])
            edits, words = edits + e, words + w
    return _ratio(edits, words)


def _report(
    options: BenchOptions,
    runs: Sequence[dict[str, Any]],
    long_run: dict[str, Any] | None,
    offline: dict[str, Any],
) -> dict[str, Any]:
    main = dict(runs[0])
    heard = main.pop("heard", {})
    report: dict[str, Any] = {
        "files": [str(path) for path in options.files],
        "model": options.model or "default (bundled tiny.en unless LIVETRANSLATE_TRANSCRIBE_MODEL)",
        "language": options.language,
        "layout": "each session plays the files back to back with pauses; several sessions "
        "play them in rotated orders from staggered starts",
        "pause_s": options.pause_s,
        **main,
        "offline_wer": offline["wer"],
        "offline_cpu_s_per_audio_s": offline["cpu_s_per_audio_s"],
        "wer_ratio": _wer_ratio(main["wer"], offline["wer"]),
        "offline_wide_beam": offline["wide_beam"],
        "offline_wide_beam_wer": offline["wide_beam_wer"],
        "wide_beam_wer_ratio": _wer_ratio(main["wer"], offline["wide_beam_wer"]),
        "cpu_ratio": _ratio(main["cpu_s_per_audio_s"], offline["cpu_s_per_audio_s"]),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "texts": [
            {
                "file": name,
                "streaming": heard.get(name, ""),
                "offline": offline["texts"][name],
            }
            for name in offline["texts"]
        ],
    }
    if len(runs) > 1:
        report["curve"] = [_curve_point(run) for run in runs]
        report["sustained_sessions"] = _sustained(runs, options.sustain_p95_s)
    if long_run is not None:
        report["long_session"] = long_run
    return report


def _curve_point(run: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "sessions",
        "final_latency_s",
        "first_partial_latency_s",
        "partial_interval_s",
        "partials_per_speech_s",
        "finals_missing",
        "wer",
        "cpu_s_per_audio_s",
        "worker_cores_busy",
    )
    return {key: run[key] for key in keys}


def _sustained(runs: Sequence[dict[str, Any]], p95_limit_s: float) -> int:
    """The most sessions whose final latency p95 stayed within the limit, all finals out."""
    kept = [
        run["sessions"]
        for run in runs
        if run["final_latency_s"]["p95"] is not None
        and run["final_latency_s"]["p95"] <= p95_limit_s
        and run["finals_missing"] == 0
    ]
    return max(kept, default=0)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


def _wer_ratio(streaming: float | None, offline: float | None) -> float | None:
    """Streaming WER over offline WER; 1.0 when both are zero."""
    if streaming is not None and offline == 0.0:
        return 1.0 if streaming == 0.0 else None
    return _ratio(streaming, offline)


# -- the table ----------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    """The figures as tables on stdout, with the issue's targets beside them."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"streaming transcription, {report['sessions']} session(s)")
    for column in ("figure", "value", "target"):
        table.add_column(column)
    for name, value in _rows(report):
        table.add_row(name, _shown(value), _target(name, value))
    console.print(table)
    if "curve" in report:
        console.print(_curve_table(report))
    if "long_session" in report:
        console.print(_long_table(report["long_session"]))


def _rows(report: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in ("final_latency_s", "first_partial_latency_s", "partial_interval_s"):
        for stat in ("p50", "p95"):
            if key != "partial_interval_s" or stat == "p50":
                yield f"{key}.{stat}", report[key][stat]
    for key in (
        "partial_rewrite_rate",
        "stable_disagreement_rate",
        "wer",
        "offline_wer",
        "wer_ratio",
        "offline_wide_beam_wer",
        "wide_beam_wer_ratio",
        "cpu_s_per_audio_s",
        "offline_cpu_s_per_audio_s",
        "cpu_ratio",
        "utterances",
        "finals_missing",
    ):
        yield key, report[key]
    yield "drops", report["drops"]
    if "decodes" in report:
        yield "decodes", report["decodes"]
    yield "rss_mb", report["rss_mb"]
    yield "load_average", report["load_average"]


def _curve_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"sessions per worker (sustained: {report['sustained_sessions']})")
    for column in ("sessions", "final p50", "final p95", "1st partial p50", "partials/s", "cores"):
        table.add_column(column)
    for point in report["curve"]:
        table.add_row(
            str(point["sessions"]),
            _shown(point["final_latency_s"]["p50"]),
            _shown(point["final_latency_s"]["p95"]),
            _shown(point["first_partial_latency_s"]["p50"]),
            _shown(point["partials_per_speech_s"]),
            _shown(point["worker_cores_busy"]),
        )
    return table


def _long_table(long_run: dict[str, Any]) -> Any:
    from rich.table import Table

    windows = long_run.get("windows", {})
    table = Table(title=f"long session ({windows.get('duration_s', '?')} s)")
    table.add_column("figure")
    table.add_column("value")
    table.add_row("final p95, first 5 min", _shown(_get(windows, "first_5min_final_latency_s")))
    table.add_row("final p95, last 5 min", _shown(_get(windows, "last_5min_final_latency_s")))
    table.add_row("p95 ratio (target <= 1.2)", _shown(windows.get("p95_ratio")))
    rss = long_run["rss_mb"]
    table.add_row("RSS start / end / max MiB", f"{rss['start']} / {rss['end']} / {rss['max']}")
    table.add_row("wer", _shown(long_run["wer"]))
    return table


def _get(windows: dict[str, Any], key: str) -> Any:
    return windows.get(key, {}).get("p95")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "-"
    return str(value)


def _target(name: str, value: Any) -> str:
    if name not in TARGETS:
        return ""
    op, limit = TARGETS[name]
    if not isinstance(value, int | float):
        return f"{op} {limit}"
    met = value <= limit if op == "<=" else value >= limit
    return f"{op} {limit} {'ok' if met else 'MISSED'}"
