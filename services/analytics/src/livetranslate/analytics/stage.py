"""The analytics stage: per-session figures from everything the others publish.

Figures are published on ``analytics.<s>`` every few seconds while a session
changes, and once more, marked final, when its last final has arrived after
the VAD closed the session (or a grace period has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import structlog
from faststream.nats import NatsRouter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Publisher, Rejected, consume
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings

__all__ = ["AnalyticsSettings", "AnalyticsStage", "SessionFigures"]

log = structlog.get_logger(__name__)


class AnalyticsSettings(BrokerSettings):
    """``LIVETRANSLATE_ANALYTICS_*``: how often figures are published."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}ANALYTICS_", extra="ignore", frozen=True)

    interval_s: float = Field(default=5.0, gt=0, description="Between snapshots of a session.")
    end_grace_s: float = Field(
        default=30.0, gt=0, description="Wait for late finals after a session ends."
    )
    complete_grace_s: float = Field(
        default=1.0,
        ge=0,
        description="Wait after the last final and its known translations, for late ones.",
    )


@dataclass
class SessionFigures:
    """What is known of one session so far."""

    session_id: str
    speech_s: float = 0.0
    utterances: set[str] = field(default_factory=set)
    finals: set[str] = field(default_factory=set)
    with_text: set[str] = field(default_factory=set)
    """Finals with text: each waits for its translations."""
    translated: dict[str, set[str]] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    turns: list[v1.SpeakerTurn] = field(default_factory=list)
    words: int = 0
    latency_s: dict[str, list[float]] = field(default_factory=dict)
    expected_utterances: int | None = None
    ended_at: float | None = None
    changed: bool = False

    def add_latency(self, stage: str, seconds: float) -> None:
        self.latency_s.setdefault(stage, []).append(max(seconds, 0.0))

    def complete(self) -> bool:
        """Every utterance has its final, and every final with text its translations."""
        if self.expected_utterances is None or len(self.finals) < self.expected_utterances:
            return False
        wanted = set(self.targets)
        return all(wanted <= self.translated.get(u, set()) for u in self.with_text)

    def snapshot(self, final: bool) -> v1.AnalyticsSnapshot:
        minutes = self.speech_s / 60
        return v1.AnalyticsSnapshot(
            session_id=self.session_id,
            final=final,
            speech_s=round(self.speech_s, 3),
            utterances=len(self.utterances | self.finals),
            words=self.words,
            words_per_minute=round(self.words / minutes, 1) if minutes > 0 else 0.0,
            latency={stage: _figures(values) for stage, values in self.latency_s.items()},
            speakers=_speaker_figures(self.turns),
            overlap_s=round(_overlap_s(self.turns), 3),
        )


def _figures(values: list[float]) -> v1.LatencyFigures:
    array = np.asarray(values)
    return v1.LatencyFigures(
        count=len(values),
        p50_s=round(float(np.percentile(array, 50)), 4),
        p95_s=round(float(np.percentile(array, 95)), 4),
    )


def _speaker_figures(turns: list[v1.SpeakerTurn]) -> dict[str, v1.SpeakerFigures]:
    """Talk time and turns per speaker; a speaker's consecutive turns count once."""
    talk: dict[str, float] = {}
    counts: dict[str, int] = {}
    previous: str | None = None
    for turn in sorted(turns, key=lambda t: t.start_s):
        talk[turn.speaker] = talk.get(turn.speaker, 0.0) + turn.end_s - turn.start_s
        if turn.speaker != previous:
            counts[turn.speaker] = counts.get(turn.speaker, 0) + 1
        previous = turn.speaker
    return {
        speaker: v1.SpeakerFigures(talk_s=round(talk[speaker], 3), turns=counts[speaker])
        for speaker in talk
    }


def _overlap_s(turns: list[v1.SpeakerTurn]) -> float:
    """Time during which turns of two different speakers run at once."""
    overlap = 0.0
    ordered = sorted(turns, key=lambda t: t.start_s)
    for index, turn in enumerate(ordered):
        for later in ordered[index + 1 :]:
            if later.start_s >= turn.end_s:
                break
            if later.speaker != turn.speaker:
                overlap += min(turn.end_s, later.end_s) - later.start_s
    return overlap


class AnalyticsStage:
    """Consumes ``vad.>``, ``transcript.final.>`` and ``translation.>``; publishes figures."""

    name = "analytics"

    def __init__(self, settings: AnalyticsSettings | None = None) -> None:
        self.settings = settings or AnalyticsSettings()
        self.sessions: dict[str, SessionFigures] = {}
        self._closed: set[str] = set()
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._publisher: Publisher | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._sessions: SessionStore | None = None

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        consumers = (
            "analytics-speech",
            "analytics-finals",
            "analytics-translations",
            "analytics-speakers",
        )
        for consumer in consumers:
            consume(router, consumer, self.name, lambda: publisher, self.handle, batch_size=64)

    async def start(self, sessions: SessionStore) -> None:
        self._sessions = sessions
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        for task in self._closing.values():
            task.cancel()
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def handle(self, decoded: Decoded, subject: str) -> None:
        contract = decoded.contract
        if getattr(contract, "session_id", None) in self._closed:
            return
        if isinstance(contract, v1.VadEvent):
            self._on_vad(contract)
            if contract.kind == "session_end":
                await self._load_targets(contract.session_id)
        elif isinstance(contract, v1.Transcript):
            self._on_final(contract)
        elif isinstance(contract, v1.Translation):
            self._on_translation(contract)
        elif isinstance(contract, v1.SpeakerTurn):
            self._figures(contract.session_id).turns.append(contract)
        else:
            raise Rejected(f"analytics does not read {contract.CONTRACT_NAME}")
        figures = self._figures(getattr(contract, "session_id", ""))
        if figures.complete() and figures.session_id not in self._closing:
            self._closing[figures.session_id] = asyncio.create_task(self._close_later(figures))

    def _on_vad(self, event: v1.VadEvent) -> None:
        figures = self._figures(event.session_id)
        if event.kind == "speech_start":
            figures.utterances.add(event.utterance_id)
        elif event.kind == "speech_end" and event.end_samples is not None:
            figures.speech_s += (event.end_samples - event.start_samples) / v1.SAMPLE_RATE_HZ
        elif event.kind == "session_end":
            figures.expected_utterances = event.utterances
            figures.ended_at = time.monotonic()

    async def _load_targets(self, session_id: str) -> None:
        if self._sessions is not None:
            config = await self._sessions.get(session_id)
            self._figures(session_id).targets = config.target_languages

    def _on_final(self, final: v1.Transcript) -> None:
        figures = self._figures(final.session_id)
        if final.kind != "final" or final.utterance_id in figures.finals:
            return
        figures.finals.add(final.utterance_id)
        figures.words += len(final.text.split())
        if final.text.strip() and not final.dropped:
            figures.with_text.add(final.utterance_id)
        if final.speech_end_at is not None:
            waited = (final.published_at - final.speech_end_at).total_seconds()
            figures.add_latency("transcribe", waited)

    def _on_translation(self, translation: v1.Translation) -> None:
        if translation.kind != "final":
            return
        figures = self._figures(translation.session_id)
        # The stage measures from its last covered final's arrival to publishing.
        figures.add_latency("translate", translation.latency_s)
        for utterance_id in translation.utterance_ids:
            figures.translated.setdefault(utterance_id, set()).add(translation.target_language)

    def _figures(self, session_id: str) -> SessionFigures:
        figures = self.sessions.get(session_id)
        if figures is None:
            figures = self.sessions[session_id] = SessionFigures(session_id)
        figures.changed = True
        return figures

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            for figures in list(self.sessions.values()):
                await self._publish_periodic(figures)

    async def _publish_periodic(self, figures: SessionFigures) -> None:
        overdue = figures.ended_at is not None and (
            time.monotonic() - figures.ended_at > self.settings.end_grace_s
        )
        if overdue:
            await self._publish_final(figures)
        elif figures.changed:
            figures.changed = False
            await self._pub().publish(figures.snapshot(final=False), _subject(figures))

    async def _close_later(self, figures: SessionFigures) -> None:
        await asyncio.sleep(self.settings.complete_grace_s)
        await self._publish_final(figures)

    async def _publish_final(self, figures: SessionFigures) -> None:
        if figures.session_id in self._closed:
            return
        self._closing.pop(figures.session_id, None)
        self.sessions.pop(figures.session_id, None)
        self._closed.add(figures.session_id)
        msg_id = f"{figures.session_id}:analytics:final"
        await self._pub().publish(figures.snapshot(final=True), _subject(figures), msg_id=msg_id)

    def _pub(self) -> Publisher:
        assert self._publisher is not None, "bind() before publishing"
        return self._publisher


def _subject(figures: SessionFigures) -> str:
    return subjects.analytics(figures.session_id)
