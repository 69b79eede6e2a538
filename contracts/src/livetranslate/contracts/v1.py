"""Version 1 of the message contracts.

Published models are frozen: a breaking change is a new module (``v2``)
served beside this one until this one is retired. Every model carries its
contract name in ``CONTRACT_NAME``; ``headers.contract_tag`` turns it into
the ``Lt-Contract`` header value.

Vocabulary: a *chunk* is what a producer sends; an *utterance* is speech
between two silences; a *segment* and a *word* are what the recogniser
returns; a *revision* is one partial hypothesis of an utterance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from livetranslate.contracts.subjects import validate_language, validate_session_id

__all__ = [
    "CONTRACTS",
    "SAMPLE_RATE_HZ",
    "VERSION",
    "AnalyticsSnapshot",
    "AudioChunkMeta",
    "Contract",
    "DeadLetter",
    "LatencyFigures",
    "SessionConfig",
    "SessionEvent",
    "SpeakerFigures",
    "SpeakerTurn",
    "SpeechAudioMeta",
    "Transcript",
    "Translation",
    "VadEvent",
    "Word",
    "utc_now",
]

VERSION: Final = 1
SAMPLE_RATE_HZ: Final = 16_000
"""Audio inside the pipeline is PCM s16le, mono, 16 kHz."""

SessionId = Annotated[str, AfterValidator(validate_session_id)]
Language = Annotated[str, AfterValidator(validate_language)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every message body: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    CONTRACT_NAME: ClassVar[str] = ""


class AudioChunkMeta(Contract):
    """Metadata of one chunk of PCM audio; the samples are the message payload.

    Travels as headers (``Lt-Audio-*``), never as JSON around base64 audio.
    """

    CONTRACT_NAME: ClassVar[str] = "audio_chunk"

    session_id: SessionId
    seq: int = Field(ge=0, description="Chunk number within the session, from 0.")
    offset_samples: int = Field(ge=0, description="Session sample index of the first sample.")
    sample_rate_hz: int = Field(default=SAMPLE_RATE_HZ, description="Must be 16000.")
    channels: int = Field(default=1, description="Must be 1.")
    encoding: Literal["s16le"] = "s16le"
    sent_at: datetime = Field(default_factory=utc_now)


class SessionConfig(Contract):
    """What a session wants; written to the session KV bucket by whoever starts it."""

    CONTRACT_NAME: ClassVar[str] = "session_config"

    session_id: SessionId
    source_language: Language | None = Field(
        default=None, description="Spoken language; None lets the recogniser detect it."
    )
    target_languages: tuple[Language, ...] = Field(
        default=(), description="Languages every final is translated into."
    )
    model: str | None = Field(
        default=None,
        description="Recogniser model name or path; None uses the stage default.",
    )
    translate_partials: bool = Field(
        default=False, description="Also translate partial revisions (costs CPU)."
    )
    glossary: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per target language, source term -> the translation it must get.",
    )
    created_at: datetime = Field(default_factory=utc_now)


class SessionEvent(Contract):
    """Start or end of a session's audio, in order with its chunks.

    The end marker travels on the same subject as the chunks so that every
    stage sees it after the last chunk and can flush what it holds.
    """

    CONTRACT_NAME: ClassVar[str] = "session_event"

    session_id: SessionId
    kind: Literal["start", "end"]
    total_samples: int = Field(default=0, ge=0, description="Samples sent, on end.")
    at: datetime = Field(default_factory=utc_now)


class VadEvent(Contract):
    """Speech started or ended, with session sample offsets."""

    CONTRACT_NAME: ClassVar[str] = "vad_event"

    session_id: SessionId
    utterance_id: str
    kind: Literal["speech_start", "speech_end", "session_end"]
    start_samples: int = Field(ge=0)
    end_samples: int | None = Field(default=None, ge=0, description="Set on speech_end.")
    utterances: int = Field(default=0, ge=0, description="Utterances so far, on session_end.")
    at: datetime = Field(default_factory=utc_now)


class SpeechAudioMeta(Contract):
    """One piece of an utterance's audio; the samples are the message payload.

    An utterance arrives as pieces numbered from 0; the piece with
    ``is_last`` closes it (its payload may be empty).
    """

    CONTRACT_NAME: ClassVar[str] = "speech_audio"

    session_id: SessionId
    utterance_id: str
    piece: int = Field(ge=0)
    offset_samples: int = Field(ge=0, description="Session sample index of the first sample.")
    utterance_start_samples: int = Field(ge=0)
    is_last: bool = False
    speech_end_at: datetime | None = Field(
        default=None,
        description="When the VAD decided the utterance ended, on the last piece.",
    )
    sent_at: datetime = Field(default_factory=utc_now)


class Word(Contract):
    text: str
    start_s: float = Field(description="Session time of the word's start.")
    end_s: float
    probability: float = Field(ge=0.0, le=1.0)


class Transcript(Contract):
    """A revision (partial) or the final text of one utterance."""

    CONTRACT_NAME: ClassVar[str] = "transcript"

    session_id: SessionId
    utterance_id: str
    kind: Literal["partial", "final"]
    revision: int = Field(ge=0, description="Increases with every partial; the final is last.")
    text: str
    stable_text: str = Field(
        default="", description="Prefix of text that later revisions will not change."
    )
    words: tuple[Word, ...] = ()
    language: str | None = None
    start_s: float = Field(ge=0.0, description="Session time the utterance starts.")
    end_s: float = Field(ge=0.0)
    speech_end_at: datetime | None = Field(
        default=None, description="When the VAD closed the utterance (finals)."
    )
    processing_s: float = Field(default=0.0, ge=0.0, description="Recogniser time spent.")
    dropped: str | None = Field(
        default=None, description="Why the text was withheld (silence, repetition...)."
    )
    published_at: datetime = Field(default_factory=utc_now)


class Translation(Contract):
    """The translation of one or more finals (or of a partial, as a draft)."""

    CONTRACT_NAME: ClassVar[str] = "translation"

    session_id: SessionId
    utterance_ids: tuple[str, ...] = Field(min_length=1)
    kind: Literal["partial", "final"] = "final"
    source_language: str
    target_language: Language
    source_text: str
    text: str
    engine: str
    latency_s: float = Field(default=0.0, ge=0.0, description="From final to translation.")
    speaker: str | None = Field(
        default=None, description="Who spoke the source text, when diarization labelled it."
    )
    start_s: float | None = Field(
        default=None,
        ge=0.0,
        description="Session time the source text starts; with several speakers in one "
        "utterance, each speaker's part is translated on its own.",
    )
    end_s: float | None = Field(
        default=None, ge=0.0, description="Session time the source text ends."
    )
    published_at: datetime = Field(default_factory=utc_now)


class SpeakerTurn(Contract):
    """Who spoke an utterance (or part of it)."""

    CONTRACT_NAME: ClassVar[str] = "speaker_turn"

    session_id: SessionId
    utterance_id: str
    speaker: str
    start_s: float = Field(ge=0.0)
    end_s: float = Field(ge=0.0)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    turns: int = Field(
        default=1, ge=1, description="How many turns the utterance has, this one included."
    )


class LatencyFigures(Contract):
    count: int = Field(ge=0)
    p50_s: float = Field(ge=0.0)
    p95_s: float = Field(ge=0.0)


class SpeakerFigures(Contract):
    talk_s: float = Field(ge=0.0, description="Seconds this speaker spoke.")
    turns: int = Field(ge=0, description="Turns, counting a continued turn once.")


class AnalyticsSnapshot(Contract):
    """Per-session figures, published every few seconds and once at the end."""

    CONTRACT_NAME: ClassVar[str] = "analytics_snapshot"

    session_id: SessionId
    final: bool = Field(description="True on the snapshot published at session end.")
    speech_s: float = Field(ge=0.0)
    utterances: int = Field(ge=0)
    words: int = Field(ge=0)
    words_per_minute: float = Field(ge=0.0, description="Words per minute of speech.")
    latency: dict[str, LatencyFigures] = Field(
        default_factory=dict, description="Per stage: its publish time minus its input's."
    )
    speakers: dict[str, SpeakerFigures] = Field(
        default_factory=dict, description="Per speaker label, when the session is diarized."
    )
    overlap_s: float = Field(default=0.0, ge=0.0, description="Seconds two speakers overlapped.")
    at: datetime = Field(default_factory=utc_now)


class DeadLetter(Contract):
    """A message a stage rejected, with why; the original payload rides along."""

    CONTRACT_NAME: ClassVar[str] = "dead_letter"

    stage: str
    subject: str
    reason: str
    headers: dict[str, str] = Field(default_factory=dict)
    payload_bytes: int = Field(ge=0)
    payload_b64: str = Field(default="", description="The rejected payload, base64.")
    deliveries: int = Field(default=1, ge=1)
    at: datetime = Field(default_factory=utc_now)


CONTRACTS: Final[dict[str, type[Contract]]] = {
    model.CONTRACT_NAME: model
    for model in (
        AudioChunkMeta,
        SessionConfig,
        SessionEvent,
        VadEvent,
        SpeechAudioMeta,
        Transcript,
        Translation,
        SpeakerTurn,
        AnalyticsSnapshot,
        DeadLetter,
    )
}
"""Every v1 contract by its name."""
