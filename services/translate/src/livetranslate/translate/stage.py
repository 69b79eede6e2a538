"""The translate stage: finals in, sentence-level translations per target language out.

Sentences, not fragments. A final that stops mid-sentence ("so what we did
was") is held until a later final of the same session ends the sentence, or
until ``join_wait_s`` after it arrived, whichever comes first; then every held
final is translated as one text and the translation names all their utterance
ids. A final whose known speaker differs from the held finals' ends their
sentence instead of joining it: one person's fragment is not the start of
another's sentence. The stage consumes ``transcript.>`` and ``speaker.>`` and
never sees a session end, so the bounded wait is also what flushes the last
fragment of a session; state of a session (context, speaker labels, ids
already translated) is forgotten after ``session_idle_s`` without a message.

Speakers inside one utterance. The VAD cuts utterances at silences, not at
speaker changes, so one final may hold a question and its answer. When the
final's labels show several speakers, its words are cut where the speaker
changes and each part joins its own speaker's sentence, as a final would;
every translation names the speaker and the session times it covers. The
final's message is acknowledged once all its parts are translated; if one
part fails, the message is redelivered and the parts already out are
published again under the same ``Nats-Msg-Id``, which the stream drops.

Targets, glossary and the draft setting come from the session's config in the
KV bucket, read when a sentence is flushed, so a target added while the
session runs applies from the next sentence on. A target no engine serves is
dead-lettered with each final (naming the pair); the other targets go on.

Delivery: each final's message is acknowledged only once every translation
covering it is published, so a stage that stops or crashes while holding a
fragment loses nothing: the broker redelivers it (after the consumer's ack
wait) to whichever replica runs next. Translations carry ``Nats-Msg-Id``
built from the covered ids and the target, and a redelivered final that is
already held or translated is not translated again. A replica that starts
afresh knows no ids; the finals redelivered to it come in stream order, are
joined as before and de-duplicated by the stream (within its duplicate
window) unless a final that was already acknowledged is missing from the
join, in which case the later translation of those ids supersedes the
earlier one. A failed translation is
retried with back-off (the messages are nacked) and dead-lettered once a
message has been delivered ``max_deliver`` times. Partials are acknowledged at
once: a draft lost is replaced by the next one.

Drafts: when the session sets ``translate_partials``, a partial is translated
(kind "partial") unless the session had a draft less than
``draft_interval_s`` ago, its final is already here, or sentences are
backing up; a draft covers the partial's own text only.

Context: the last ``context_finals`` sentences and their published
translations go with each text to engines that use them (CTranslate2; Bergamot
ignores them): the same speaker's sentences when the diarize stage labelled
the text's utterances, the session's otherwise. Transcripts carry no speaker;
labels come on ``speaker.<session>``, usually just before the final. Once a
session has shown labels, a final whose label is not here yet waits for it up
to ``speaker_wait_s`` (later finals of the session queue behind it, to keep
their order); a session without labels never waits, so translation is no
slower when diarize is off.

Batching: flushed sentences go to a ``Batcher``, which translates what all
sessions have pending with one engine call per language pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from faststream import Context as Inject
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.message import NatsMessage
from nats.aio.msg import Msg
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from livetranslate.contracts import ContractError, decode, subjects, v1
from livetranslate.contracts import headers as h
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Publisher, Rejected, consume
from livetranslate.streams.delivery import retry_or_give_up
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings, ComputeType
from livetranslate.streams.topology import CONSUMERS
from livetranslate.translate.batching import Batcher, Job, Outcome, Request, Result
from livetranslate.translate.context import ContextHistory, ContextPair
from livetranslate.translate.engines import (
    BergamotEngine,
    CTranslate2Engine,
    CTranslate2Model,
    CTranslate2Options,
    Router,
    TranslationEngine,
)
from livetranslate.translate.errors import UnsupportedLanguageError, UnsupportedPairError
from livetranslate.translate.glossary import Glossary
from livetranslate.translate.languages import normalize_language
from livetranslate.translate.sentences import ends_sentence, joiner
from livetranslate.translate.speakers import (
    SpeakerLabels,
    speaker_runs,
    split_at_speaker_changes,
)

__all__ = ["TranslateMetrics", "TranslateSettings", "TranslateStage"]

log = structlog.get_logger(__name__)

Message = Annotated[NatsMessage, Inject("message")]

_COVERED_IDS_KEPT = 1024
"""Utterance ids remembered per session as translated, to drop redeliveries."""
_DRAFT_BACKLOG = 8
"""Pending jobs beyond which drafts are skipped: partials go before finals."""


class TranslateSettings(BrokerSettings):
    """``LIVETRANSLATE_TRANSLATE_*``: engines, and how finals become sentences."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}TRANSLATE_", extra="ignore", frozen=True)

    ct2_models: dict[str, Path | CTranslate2Model] = Field(
        default_factory=dict,
        description='CTranslate2 model per pair, JSON: {"en-de": "/models/opus-en-de", '
        '"en-ja": {"folder": "/models/nllb", "family": "nllb"}}.',
    )
    ct2_device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu", description="Where CTranslate2 models run; cuda needs a GPU build."
    )
    ct2_compute_type: ComputeType = Field(
        default="default", description="CTranslate2 weight type; int8 is fastest on a CPU."
    )
    ct2_inter_threads: int = Field(
        default=1, ge=1, description="Batches a CTranslate2 model decodes at once."
    )
    ct2_intra_threads: int = Field(
        default=0, ge=0, description="Threads inside one CTranslate2 batch; 0 lets it choose."
    )
    ct2_beam_size: int = Field(default=2, ge=1, description="1 is fastest, 4-5 reads best.")
    bergamot: bool = Field(default=True, description="Serve en<->pt with the bundled engine.")
    bergamot_threads: int = Field(
        default=1, ge=1, description="Sentences of one batch Bergamot translates side by side."
    )
    default_source_language: str = Field(
        default="en", description="Assumed when a transcript names no language."
    )
    join_wait_s: float = Field(
        default=1.2,
        ge=0.0,
        le=10.0,
        description="Longest a final ending mid-sentence waits for the rest; 0 never joins.",
    )
    max_join_chars: int = Field(
        default=2000, ge=1, description="Held text that is flushed without waiting for a stop."
    )
    draft_interval_s: float = Field(
        default=1.0, ge=0.0, description="Least time between two drafts of one session."
    )
    batch_window_s: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="How long the first pending sentence waits for others to share its batch.",
    )
    context_finals: int = Field(
        default=2,
        ge=0,
        le=32,
        description="Earlier sentences passed as context: the same speaker's where known.",
    )
    speaker_wait_s: float = Field(
        default=0.4,
        ge=0.0,
        le=5.0,
        description="Longest a final waits for its speaker label, in a session that has "
        "shown labels, so that its context is its speaker's. Labels usually come 0.3-0.6 s "
        "before the final; a longer wait delays translation when diarize lags, 0 never waits.",
    )
    session_idle_s: float = Field(
        default=600.0, gt=0.0, description="A session's state is dropped after this long idle."
    )

    @field_validator("ct2_models")
    @classmethod
    def _pairs_are_well_formed(
        cls, value: dict[str, Path | CTranslate2Model]
    ) -> dict[str, Path | CTranslate2Model]:
        for pair in value:
            source, _, target = pair.partition("-")
            if not source or not target:
                raise ValueError(f"pair keys look like 'en-de'; got {pair!r}")
            _split_pair(pair)
        return value

    @field_validator("default_source_language")
    @classmethod
    def _language_is_known(cls, value: str) -> str:
        return normalize_language(value)

    def ct2_options(self) -> CTranslate2Options:
        return CTranslate2Options(
            device=self.ct2_device,
            compute_type=self.ct2_compute_type,
            inter_threads=self.ct2_inter_threads,
            intra_threads=self.ct2_intra_threads,
            beam_size=self.ct2_beam_size,
        )

    def engines(self) -> list[TranslationEngine]:
        """The configured engines, CTranslate2 first: a model on disk beats the default."""
        engines: list[TranslationEngine] = []
        if self.ct2_models:
            pairs = {_split_pair(key): model for key, model in self.ct2_models.items()}
            engines.append(CTranslate2Engine(pairs, self.ct2_options()))
        if self.bergamot:
            engines.append(BergamotEngine(threads=self.bergamot_threads))
        return engines

    def router(self) -> Router:
        return Router(self.engines())


def _split_pair(key: str) -> tuple[str, str]:
    source, _, target = key.partition("-")
    return normalize_language(source), normalize_language(target)


@dataclass
class TranslateMetrics:
    """Counts since the stage started, for logs, tests and a metrics endpoint."""

    translations: int = 0
    """Final translations published (one per target)."""
    drafts: int = 0
    """Draft translations of partials published."""
    drafts_skipped: int = 0
    """Partials not translated: too soon after the last draft, or a backlog."""
    joined_finals: int = 0
    """Finals translated together with another final of their sentence."""
    flushed_by_wait: int = 0
    """Sentences translated because ``join_wait_s`` ran out, not at a stop."""
    duplicates: int = 0
    """Finals delivered again after they were held or translated."""
    glossary_misses: int = 0
    """Glossary terms whose required translation was not in an output."""
    failures: int = 0
    """Sentences whose translation failed and was retried or dead-lettered."""
    speaker_turns: int = 0
    """Speaker turns received from the diarize stage."""
    speaker_waits_expired: int = 0
    """Finals that waited ``speaker_wait_s`` for their label in vain."""
    batches: int = 0
    batched_jobs: int = 0


@dataclass
class _Delivery:
    """A final's message, every delivery of it, and its parts still to translate."""

    messages: list[Msg]
    parts: int = 1
    failed: bool = False


@dataclass
class _Held:
    """A final, or one speaker's part of it, waiting for its translation."""

    transcript: v1.Transcript
    delivery: _Delivery
    received_at: float
    speaker: str | None = None
    """The part's speaker; None for a whole final, whose speaker comes from the labels."""

    @property
    def messages(self) -> list[Msg]:
        return self.delivery.messages


@dataclass
class _Waiting:
    """A final waiting for its speaker label before it joins its sentence."""

    held: _Held
    source: str
    until: float


@dataclass
class _Session:
    """What the stage keeps about one session between messages."""

    session_id: str
    history: ContextHistory
    buffer: list[_Held] = field(default_factory=list)
    buffer_source: str | None = None
    deadline: float | None = None
    waiting: deque[_Waiting] = field(default_factory=deque)
    held: dict[str, _Held] = field(default_factory=dict)
    covered: OrderedDict[str, None] = field(default_factory=OrderedDict)
    labels: SpeakerLabels = field(default_factory=SpeakerLabels)
    last_draft_at: float = float("-inf")
    last_seen: float = field(default_factory=time.monotonic)
    glossaries: tuple[v1.SessionConfig | None, dict[str, Glossary]] = (None, {})

    def cover(self, utterance_ids: Sequence[str]) -> None:
        for utterance_id in utterance_ids:
            self.held.pop(utterance_id, None)
            self.covered[utterance_id] = None
        while len(self.covered) > _COVERED_IDS_KEPT:
            self.covered.popitem(last=False)

    def knows(self, utterance_id: str) -> bool:
        return utterance_id in self.covered or utterance_id in self.held

    def speaker_of(self, held: _Held) -> str | None:
        return held.speaker or self.labels.speaker_of((held.transcript.utterance_id,))

    def speaker_of_run(self, run: Sequence[_Held]) -> str | None:
        """Who spoke finals flushed together: their parts' speaker, else the labels' choice."""
        parts = [held.speaker for held in run if held.speaker]
        if parts:
            return parts[-1]
        return self.labels.speaker_of(held.transcript.utterance_id for held in run)

    def must_wait(self, held: _Held, wait_s: float) -> bool:
        """Whether ``held`` waits for its label, or behind finals that do."""
        if self.waiting:
            return True
        labelled = self.labels.complete(held.transcript.utterance_id)
        return wait_s > 0 and self.labels.seen and not labelled


@dataclass(frozen=True)
class _Sentence:
    """Finals flushed together: the text one translation will cover."""

    session_id: str
    source: str
    finals: tuple[_Held, ...]
    by_wait: bool
    speaker: str | None

    @property
    def utterance_ids(self) -> tuple[str, ...]:
        return tuple(held.transcript.utterance_id for held in self.finals)

    @property
    def text(self) -> str:
        return joiner(self.source).join(held.transcript.text.strip() for held in self.finals)

    @property
    def deliveries(self) -> list[_Delivery]:
        unique: dict[int, _Delivery] = {id(held.delivery): held.delivery for held in self.finals}
        return list(unique.values())

    @property
    def messages(self) -> list[Msg]:
        return [msg for delivery in self.deliveries for msg in delivery.messages]

    @property
    def is_part(self) -> bool:
        """Whether it holds one speaker's part of a final rather than whole finals."""
        return any(held.speaker is not None for held in self.finals)


class TranslateStage:
    """Consumes ``transcript.>`` and ``speaker.>``; publishes ``translation.<lang>.<s>``."""

    name = "translate"

    def __init__(
        self, settings: TranslateSettings | None = None, router: Router | None = None
    ) -> None:
        self.settings = settings or TranslateSettings()
        self.metrics = TranslateMetrics()
        self._router = router
        self._publisher: Publisher | None = None
        self._store: SessionStore | None = None
        self._batcher: Batcher | None = None
        self._sessions: dict[str, _Session] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._max_deliver = CONSUMERS["translate"].max_deliver

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        spec = CONSUMERS["translate"]

        async def on_message(message: Message) -> None:
            await self._deliver(message.raw_message)

        # Its own loop, older than the keeping mode of livetranslate.streams.consume:
        # a final held for its sentence stays unacknowledged until its translation
        # is out. consume(..., keeping=True) now does that and could replace it.
        # One message per fetch keeps the stream's order, which joining depends on.
        router.subscriber(
            spec.filter_subjects[0],
            stream=JStream(spec.stream, declare=False),
            durable=spec.durable,
            pull_sub=PullSub(batch_size=1, timeout=5.0),
            ack_policy=AckPolicy.MANUAL,
        )(on_message)
        # Labels are a set per utterance, so their order does not matter.
        consume(
            router, "translate-speakers", self.name, self._publisher_, self._label, batch_size=16
        )

    async def start(self, sessions: SessionStore) -> None:
        self._store = sessions
        if self._router is None:
            self._router = self.settings.router()
        self._batcher = Batcher(self._router, self.settings.batch_window_s, self._count_batch)
        self._tasks = [
            asyncio.create_task(self._batcher.run(), name="translate-batcher"),
            asyncio.create_task(self._flush_when_due(), name="translate-join-wait"),
        ]

    async def stop(self) -> None:
        # Held finals stay unacknowledged: the broker redelivers them.
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _deliver(self, raw: Msg) -> None:
        headers = raw.headers or {}
        structlog.contextvars.bind_contextvars(
            subject=raw.subject, session_id=headers.get(h.SESSION)
        )
        try:
            transcript = decode(headers, raw.data).contract
            if not isinstance(transcript, v1.Transcript):
                raise Rejected(f"expected transcript, got {transcript.CONTRACT_NAME}")
            await self._receive(transcript, raw)
        except (ContractError, Rejected) as exc:
            await self._dead_letter([raw], str(exc))
        except Exception as exc:
            await self._retry_or_give_up([raw], exc)
        finally:
            structlog.contextvars.unbind_contextvars("subject", "session_id")

    async def _receive(self, transcript: v1.Transcript, raw: Msg) -> None:
        if transcript.kind == "partial":
            await self._draft(transcript)
            await raw.ack()
            return
        if not transcript.text.strip() or transcript.dropped:
            await raw.ack()
            return
        source = self._source_language(transcript)
        session = self._session(transcript.session_id)
        if session.knows(transcript.utterance_id):
            await self._duplicate(session, transcript.utterance_id, raw)
            return
        config = await self._config(transcript.session_id)
        if not await self._serves_some_target(config, source, raw):
            await raw.ack()
            return
        held = _Held(transcript, _Delivery([raw]), time.monotonic())
        if session.must_wait(held, self.settings.speaker_wait_s):
            self._wait_for_label(session, held, source)
            return
        await self._hold(session, held, source)

    def _wait_for_label(self, session: _Session, held: _Held, source: str) -> None:
        # Held already, so that a redelivery while it waits is a duplicate.
        session.held[held.transcript.utterance_id] = held
        session.last_seen = held.received_at
        until = held.received_at + self.settings.speaker_wait_s
        session.waiting.append(_Waiting(held, source, until))
        self._wake.set()

    async def _label(self, decoded: Decoded, subject: str) -> None:
        turn = decoded.contract
        if not isinstance(turn, v1.SpeakerTurn):
            raise Rejected(f"expected speaker_turn, got {turn.CONTRACT_NAME}")
        session = self._session(turn.session_id)
        session.labels.add(turn)
        session.last_seen = time.monotonic()
        self.metrics.speaker_turns += 1
        if session.waiting:
            self._wake.set()

    async def _release(self, session: _Session, now: float) -> None:
        """Hold, in order, the waiting finals whose label came or whose wait ran out."""
        while session.waiting:
            waiting = session.waiting[0]
            labelled = session.labels.complete(waiting.held.transcript.utterance_id)
            if not labelled and waiting.until > now:
                return
            if not labelled:
                self.metrics.speaker_waits_expired += 1
            # Left in the queue while it joins, so that a final arriving meanwhile
            # queues behind it rather than overtaking it.
            try:
                await self._hold(session, waiting.held, waiting.source)
            except Exception as exc:
                await self._give_back(session, waiting.held, exc)
            finally:
                session.waiting.popleft()

    async def _give_back(self, session: _Session, held: _Held, exc: Exception) -> None:
        """Let the broker redeliver a final that failed before joining its sentence."""
        if any(item.delivery is held.delivery for item in session.buffer):
            return  # the join wait retries its flush
        session.held.pop(held.transcript.utterance_id, None)
        await self._retry_or_give_up(held.messages, exc)

    async def _duplicate(self, session: _Session, utterance_id: str, raw: Msg) -> None:
        self.metrics.duplicates += 1
        held = session.held.get(utterance_id)
        if held is None:
            log.info("final.duplicate", utterance_id=utterance_id)
            await raw.ack()
            return
        held.messages.append(raw)

    async def _serves_some_target(self, config: v1.SessionConfig, source: str, raw: Msg) -> bool:
        """Dead-letter the final for each target no engine serves; any left to do?"""
        served = False
        for target in _targets(config, source):
            try:
                self._engine().resolve(source, target)
            except UnsupportedPairError as exc:
                await self._publisher_().dead_letter(
                    self.name, raw.subject, raw.headers, raw.data, str(exc)
                )
                continue
            served = True

        return served

    async def _hold(self, session: _Session, held: _Held, source: str) -> None:
        """Hold the final, or each speaker's part of it, for its sentence."""
        session.held[held.transcript.utterance_id] = held
        turns = session.labels.turns_of(held.transcript.utterance_id)
        for part in _speaker_parts(held, turns, source):
            await self._hold_part(session, part, source)

    async def _hold_part(self, session: _Session, held: _Held, source: str) -> None:
        if session.buffer and (
            session.buffer_source != source or self._speaker_changes(session, held)
        ):
            await self._flush(session, by_wait=False)
        session.buffer.append(held)
        session.buffer.sort(key=lambda item: item.transcript.start_s)
        session.buffer_source = source
        session.last_seen = held.received_at
        if session.deadline is None:
            # Set even when flushing now: should the flush fail, the wait retries it.
            session.deadline = held.received_at + self.settings.join_wait_s
            self._wake.set()
        text = joiner(source).join(item.transcript.text.strip() for item in session.buffer)
        if ends_sentence(text) or len(text) >= self.settings.max_join_chars:
            await self._flush(session, by_wait=False)

    def _speaker_changes(self, session: _Session, held: _Held) -> bool:
        """Whether ``held`` has a known speaker other than the held finals' one."""
        speaker = session.speaker_of(held)
        before = session.speaker_of_run(session.buffer)
        return speaker is not None and before is not None and speaker != before

    async def _flush(self, session: _Session, *, by_wait: bool) -> None:
        # The config first: if reading it fails, the held finals stay held.
        config = await self._config(session.session_id)
        if not session.buffer or session.buffer_source is None:
            return
        finals, source = session.buffer, session.buffer_source
        session.buffer, session.buffer_source, session.deadline = [], None, None
        # A label that came after its final joined the buffer still splits it here.
        for run in split_at_speaker_changes(finals, session.speaker_of):
            speaker = session.speaker_of_run(run)
            sentence = _Sentence(session.session_id, source, tuple(run), by_wait, speaker)
            await self._submit(session, config, sentence)

    async def _submit(
        self, session: _Session, config: v1.SessionConfig, sentence: _Sentence
    ) -> None:
        requests = self._requests(session, config, sentence.source, sentence.text, sentence.speaker)
        if not requests:
            await self._translated(session, sentence)
            return
        if sentence.by_wait:
            self.metrics.flushed_by_wait += 1
        if len(sentence.finals) > 1:
            self.metrics.joined_finals += len(sentence.finals)

        async def finish(outcomes: dict[str, Outcome]) -> None:
            await self._publish_sentence(session, sentence, outcomes)

        self._batcher_().submit(Job(sentence.source, requests, finish))

    def _requests(
        self,
        session: _Session,
        config: v1.SessionConfig,
        source: str,
        text: str,
        speaker: str | None,
    ) -> dict[str, Request]:
        """One request per target the session wants and an engine serves."""
        glossaries = self._glossaries(session, config)
        requests = {}
        for target in _targets(config, source):
            try:
                self._engine().resolve(source, target)
            except UnsupportedPairError:
                continue
            context = session.history.context(target, speaker)
            requests[target] = Request(text, glossaries.get(target, Glossary()), context)

        return requests

    async def _publish_sentence(
        self, session: _Session, sentence: _Sentence, outcomes: dict[str, Outcome]
    ) -> None:
        failed: list[tuple[str, Exception]] = []
        # Asked again, not taken from the sentence: a label may have come since the flush.
        speaker = session.speaker_of_run(sentence.finals)
        for target, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                failed.append((target, outcome))
                continue
            try:
                await self._publish(sentence, target, outcome, speaker)
            except Exception as exc:
                failed.append((target, exc))
                continue
            session.history.remember(target, speaker, ContextPair(sentence.text, outcome.text))
        if failed:
            self.metrics.failures += 1
            reason = "; ".join(f"{target}: {exc!r}" for target, exc in failed)
            await self._failed(session, sentence, RuntimeError(reason))
            return
        await self._translated(session, sentence)

    async def _translated(self, session: _Session, sentence: _Sentence) -> None:
        """Acknowledge each final whose every part is now translated."""
        for held in sentence.finals:
            held.delivery.parts -= 1
        for delivery in sentence.deliveries:
            if delivery.parts > 0 or delivery.failed:
                continue
            session.cover(
                [h.transcript.utterance_id for h in sentence.finals if h.delivery is delivery]
            )
            await _ack(delivery.messages)

    async def _failed(self, session: _Session, sentence: _Sentence, exc: Exception) -> None:
        """Let the broker redeliver the finals; their other parts are then translated again."""
        deliveries = [delivery for delivery in sentence.deliveries if not delivery.failed]
        for delivery in deliveries:
            delivery.failed = True
        for held in sentence.finals:
            session.held.pop(held.transcript.utterance_id, None)
        messages = [msg for delivery in deliveries for msg in delivery.messages]
        await self._retry_or_give_up(messages, exc)

    async def _publish(
        self, sentence: _Sentence, target: str, result: Result, speaker: str | None
    ) -> None:
        first, last = sentence.finals[0], sentence.finals[-1]
        translation = v1.Translation(
            session_id=sentence.session_id,
            utterance_ids=sentence.utterance_ids,
            kind="final",
            source_language=sentence.source,
            target_language=target,
            source_text=sentence.text,
            text=result.text,
            engine=self._engine_name(sentence.source, target),
            latency_s=time.monotonic() - last.received_at,
            speaker=speaker,
            start_s=first.transcript.start_s,
            end_s=last.transcript.end_s,
        )
        self._check_glossary(sentence.session_id, sentence.utterance_ids, target, result)
        msg_id = f"{sentence.session_id}:{'+'.join(sentence.utterance_ids)}:{target}:final"
        if sentence.is_part:
            # Two parts of one final may each be translated alone: same ids, other times.
            msg_id += f":{round(first.transcript.start_s * 1000)}"
        subject = subjects.translation(target, sentence.session_id)
        await self._publisher_().publish(translation, subject, msg_id=msg_id)
        self.metrics.translations += 1

    async def _draft(self, partial: v1.Transcript) -> None:
        if not partial.text.strip() or partial.dropped:
            return
        config = await self._config(partial.session_id)
        if not config.translate_partials:
            return
        session = self._session(partial.session_id)
        now = time.monotonic()
        too_soon = now - session.last_draft_at < self.settings.draft_interval_s
        backlog = self._batcher_().pending >= _DRAFT_BACKLOG
        if too_soon or backlog or session.knows(partial.utterance_id):
            self.metrics.drafts_skipped += 1
            return
        try:
            source = self._source_language(partial)
        except Rejected:
            return
        speaker = session.labels.speaker_of((partial.utterance_id,))
        requests = self._requests(session, config, source, partial.text.strip(), speaker)
        if not requests:
            return
        session.last_draft_at = now

        async def finish(outcomes: dict[str, Outcome]) -> None:
            await self._publish_draft(session, partial, source, now, outcomes)

        self._batcher_().submit(Job(source, requests, finish))

    async def _publish_draft(
        self,
        session: _Session,
        partial: v1.Transcript,
        source: str,
        received_at: float,
        outcomes: dict[str, Outcome],
    ) -> None:
        for target, outcome in outcomes.items():
            # A draft that comes after its final's translation would replace it.
            if isinstance(outcome, Exception) or partial.utterance_id in session.covered:
                continue
            translation = v1.Translation(
                session_id=partial.session_id,
                utterance_ids=(partial.utterance_id,),
                kind="partial",
                source_language=source,
                target_language=target,
                source_text=partial.text.strip(),
                text=outcome.text,
                engine=self._engine_name(source, target),
                latency_s=time.monotonic() - received_at,
            )
            msg_id = f"{partial.session_id}:{partial.utterance_id}:{target}:r{partial.revision}"
            subject = subjects.translation(target, partial.session_id)
            try:
                await self._publisher_().publish(translation, subject, msg_id=msg_id)
            except Exception as exc:
                log.warning("draft.not_published", error=repr(exc))
                continue
            self.metrics.drafts += 1

    def _check_glossary(
        self, session_id: str, utterance_ids: Sequence[str], target: str, result: Result
    ) -> None:
        if not result.missing_terms:
            return
        self.metrics.glossary_misses += len(result.missing_terms)
        log.warning(
            "glossary.term_missed",
            session_id=session_id,
            utterance_ids=list(utterance_ids),
            target=target,
            terms=list(result.missing_terms),
            placeholders_lost=result.placeholders_lost,
        )

    async def _flush_when_due(self) -> None:
        """Release finals whose label wait is over; flush fragments whose join wait is."""
        while True:
            timeout_s = max(self._next_due() - time.monotonic(), 0.0)
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns
            # normally when it is cancelled just as the event is set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            self._wake.clear()
            now = time.monotonic()
            for session in list(self._sessions.values()):
                try:
                    await self._release(session, now)
                except Exception:
                    log.exception("release.failed", session_id=session.session_id)
                if session.deadline is not None and session.deadline <= now:
                    try:
                        await self._flush(session, by_wait=True)
                    except Exception:
                        log.exception("flush.failed", session_id=session.session_id)
                        session.deadline = now + 1.0
            self._forget_idle(now)

    def _next_due(self) -> float:
        """When the join wait or a label wait of some session next runs out."""
        due = [time.monotonic() + 60.0]
        for session in self._sessions.values():
            if session.deadline is not None:
                due.append(session.deadline)
            if session.waiting:
                due.append(session.waiting[0].until)

        return min(due)

    def _forget_idle(self, now: float) -> None:
        idle_s = self.settings.session_idle_s
        for session_id, session in list(self._sessions.items()):
            if not session.held and now - session.last_seen > idle_s:
                del self._sessions[session_id]

    async def _dead_letter(self, messages: Sequence[Msg], reason: str) -> None:
        for raw in messages:
            deliveries = raw.metadata.num_delivered or 1
            await self._publisher_().dead_letter(
                self.name, raw.subject, raw.headers, raw.data, reason, deliveries
            )
            await raw.ack()

    async def _retry_or_give_up(self, messages: Sequence[Msg], exc: Exception) -> None:
        for raw in messages:
            await retry_or_give_up(raw, self._max_deliver, self.name, self._publisher_(), exc)

    def _source_language(self, transcript: v1.Transcript) -> str:
        code = transcript.language or self.settings.default_source_language
        try:
            return normalize_language(code)
        except UnsupportedLanguageError as exc:
            raise Rejected(f"cannot translate from the transcript's language: {exc}") from exc

    def _glossaries(self, session: _Session, config: v1.SessionConfig) -> dict[str, Glossary]:
        seen, glossaries = session.glossaries
        if seen is not config:
            glossaries = _glossaries(config)
            session.glossaries = (config, glossaries)

        return glossaries

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            history = ContextHistory(self.settings.context_finals)
            session = self._sessions[session_id] = _Session(session_id, history)

        return session

    def _engine_name(self, source: str, target: str) -> str:
        engine: Any = self._engine().resolve(source, target)
        return str(getattr(engine, "name", type(engine).__name__))

    def _count_batch(self, jobs: int, pairs: int) -> None:
        self.metrics.batches += 1
        self.metrics.batched_jobs += jobs

    async def _config(self, session_id: str) -> v1.SessionConfig:
        assert self._store is not None, "start() before handling"
        return await self._store.get(session_id)

    def _engine(self) -> Router:
        assert self._router is not None, "start() before translating"
        return self._router

    def _batcher_(self) -> Batcher:
        assert self._batcher is not None, "start() before translating"
        return self._batcher

    def _publisher_(self) -> Publisher:
        assert self._publisher is not None, "bind() before publishing"
        return self._publisher


def _speaker_parts(held: _Held, turns: Sequence[v1.SpeakerTurn], source: str) -> list[_Held]:
    """The final cut where its words' speaker changes; the final itself when one spoke."""
    transcript = held.transcript
    runs = speaker_runs(transcript.words, turns)
    if len(runs) < 2:
        return [held]
    held.delivery.parts = len(runs)
    parts = []
    for n, (speaker, words) in enumerate(runs):
        text = joiner(source).join(word.text.strip() for word in words)
        start_s = transcript.start_s if n == 0 else words[0].start_s
        end_s = transcript.end_s if n == len(runs) - 1 else words[-1].end_s
        update = {"text": text, "words": tuple(words), "start_s": start_s, "end_s": end_s}
        part = transcript.model_copy(update=update)
        parts.append(_Held(part, held.delivery, held.received_at, speaker))

    return parts


def _targets(config: v1.SessionConfig, source: str) -> list[str]:
    """The session's targets as normalised codes, without the source language."""
    targets: dict[str, None] = {}
    for code in config.target_languages:
        with contextlib.suppress(UnsupportedLanguageError):
            targets[normalize_language(code)] = None
    targets.pop(source, None)

    return list(targets)


def _glossaries(config: v1.SessionConfig) -> dict[str, Glossary]:
    glossaries: dict[str, Glossary] = {}
    for code, terms in config.glossary.items():
        try:
            glossaries[normalize_language(code)] = Glossary(terms)
        except UnsupportedLanguageError:
            log.warning("glossary.bad_language", language=code)

    return glossaries


async def _ack(messages: Sequence[Msg]) -> None:
    for raw in messages:
        await raw.ack()
