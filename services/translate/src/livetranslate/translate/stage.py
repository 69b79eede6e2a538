"""The translate stage: finals in, one translation per target language out.

Target languages come from the session's config in the KV bucket, read at
each final, so a target added while the session runs applies from the next
final on. Partials are translated only when the session asks for drafts.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog
from faststream.nats import NatsRouter
from livetranslate.contracts import subjects, v1
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams import Publisher, Rejected, consume
from livetranslate.streams.sessions import SessionStore
from livetranslate.streams.settings import PREFIX, BrokerSettings
from livetranslate.translate.engines import (
    BergamotEngine,
    CTranslate2Engine,
    Router,
    TranslationEngine,
)
from livetranslate.translate.languages import normalize_language
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

__all__ = ["TranslateSettings", "TranslateStage"]

log = structlog.get_logger(__name__)


class TranslateSettings(BrokerSettings):
    """``LIVETRANSLATE_TRANSLATE_*``: which engines serve which language pairs."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}TRANSLATE_", extra="ignore", frozen=True)

    ct2_models: dict[str, Path] = Field(
        default_factory=dict,
        description='CTranslate2 model folder per pair, JSON: {"en-de": "/models/opus-en-de"}.',
    )
    bergamot: bool = Field(default=True, description="Serve en<->pt with the bundled engine.")
    default_source_language: str = Field(
        default="en", description="Assumed when a transcript names no language."
    )

    @field_validator("ct2_models")
    @classmethod
    def _pairs_are_well_formed(cls, value: dict[str, Path]) -> dict[str, Path]:
        for pair in value:
            source, _, target = pair.partition("-")
            if not source or not target:
                raise ValueError(f"pair keys look like 'en-de'; got {pair!r}")
        return value

    def engines(self) -> list[TranslationEngine]:
        engines: list[TranslationEngine] = []
        if self.ct2_models:
            pairs = {_split_pair(key): path for key, path in self.ct2_models.items()}
            engines.append(CTranslate2Engine(pairs))
        if self.bergamot:
            engines.append(BergamotEngine())
        return engines


def _split_pair(key: str) -> tuple[str, str]:
    source, _, target = key.partition("-")
    return normalize_language(source), normalize_language(target)


class TranslateStage:
    """Consumes ``transcript.>``; publishes ``translation.<lang>.<s>``."""

    name = "translate"

    def __init__(
        self, settings: TranslateSettings | None = None, router: Router | None = None
    ) -> None:
        self.settings = settings or TranslateSettings()
        self._router = router
        self._publisher: Publisher | None = None
        self._sessions: SessionStore | None = None

    def bind(self, router: NatsRouter, publisher: Publisher) -> None:
        self._publisher = publisher
        consume(router, "translate", self.name, lambda: publisher, self.handle)

    async def start(self, sessions: SessionStore) -> None:
        self._sessions = sessions
        if self._router is None:
            self._router = Router(self.settings.engines())

    async def stop(self) -> None:
        pass

    async def handle(self, decoded: Decoded, subject: str) -> None:
        transcript = decoded.contract
        if not isinstance(transcript, v1.Transcript):
            raise Rejected(f"expected transcript, got {transcript.CONTRACT_NAME}")
        if not transcript.text.strip() or transcript.dropped:
            return
        config = await self._config(transcript.session_id)
        if transcript.kind == "partial" and not config.translate_partials:
            return
        for target in config.target_languages:
            await self._translate(transcript, target)

    async def _translate(self, transcript: v1.Transcript, target: str) -> None:
        source = normalize_language(transcript.language or self.settings.default_source_language)
        if source == target:
            return
        started = time.monotonic()
        try:
            (text,) = await asyncio.to_thread(
                self._engine().translate, [transcript.text], source, target
            )
        except ValueError as exc:
            raise Rejected(f"cannot translate {source}->{target}: {exc}") from exc
        await self._publish(transcript, source, target, text, time.monotonic() - started)

    async def _publish(
        self, transcript: v1.Transcript, source: str, target: str, text: str, took_s: float
    ) -> None:
        engine = self._engine().resolve(source, target)
        translation = v1.Translation(
            session_id=transcript.session_id,
            utterance_ids=(transcript.utterance_id,),
            kind=transcript.kind,
            source_language=source,
            target_language=target,
            source_text=transcript.text,
            text=text,
            engine=getattr(engine, "name", type(engine).__name__),
            latency_s=took_s,
        )
        msg_id = f"{transcript.session_id}:{transcript.utterance_id}:{target}:" + (
            "final" if transcript.kind == "final" else f"r{transcript.revision}"
        )
        subject = subjects.translation(target, transcript.session_id)
        await self._pub().publish(translation, subject, msg_id=msg_id)

    async def _config(self, session_id: str) -> v1.SessionConfig:
        assert self._sessions is not None, "start() before handling"
        return await self._sessions.get(session_id)

    def _engine(self) -> Router:
        assert self._router is not None, "start() before translating"
        return self._router

    def _pub(self) -> Publisher:
        assert self._publisher is not None, "bind() before publishing"
        return self._publisher
