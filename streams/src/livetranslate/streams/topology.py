"""JetStream topology as code: streams, durable consumers, the session bucket.

``livetranslate streams apply`` creates or updates all of it; stages bind to
what exists and never rewrite it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ACCESS_BUCKET",
    "AUDIO",
    "CONSUMERS",
    "DEAD_LETTERS",
    "RESULTS",
    "SESSIONS_BUCKET",
    "SPEECH",
    "STREAMS",
    "ConsumerSpec",
    "StreamSpec",
    "stream_for",
]

HOUR_S: Final = 3600


@dataclass(frozen=True)
class StreamSpec:
    """One stream; ``max_age_s`` is how long a session stays replayable."""

    name: str
    subjects: tuple[str, ...]
    max_age_s: int = 24 * HOUR_S
    max_msg_size: int = 1024 * 1024
    duplicate_window_s: int = 120
    replicas: int = 1


@dataclass(frozen=True)
class ConsumerSpec:
    """One durable pull consumer that a stage binds to by name."""

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 5
    ack_wait_s: float = 30.0
    max_ack_pending: int = 10_000
    backoff_s: tuple[float, ...] = field(default=())


AUDIO: Final = StreamSpec("AUDIO", ("audio.ingest.>",))
SPEECH: Final = StreamSpec("SPEECH", ("audio.speech.>", "vad.>"))
RESULTS: Final = StreamSpec(
    "RESULTS", ("transcript.>", "translation.>", "speaker.>", "analytics.>")
)
DEAD_LETTERS: Final = StreamSpec("DEADLETTER", ("deadletter.>",), max_age_s=7 * 24 * HOUR_S)

STREAMS: Final = (AUDIO, SPEECH, RESULTS, DEAD_LETTERS)

CONSUMERS: Final = {
    "vad": ConsumerSpec("AUDIO", "vad", ("audio.ingest.>",)),
    # The stage keeps an utterance's pieces un-acked until its final is out,
    # renewing their ack wait as it goes. So the ack wait need not cover the
    # work; it is how long the pieces of a stage that stopped wait before the
    # broker hands them to the next one. Pending pieces add up to five per
    # second of open speech (75 for a 15 s utterance): when they reach
    # max_ack_pending the broker stops delivering, and open utterances wait
    # for the pieces that would close them, so the limit stays far above what
    # all open utterances can hold at once.
    "transcribe": ConsumerSpec(
        "SPEECH",
        "transcribe",
        ("audio.speech.>",),
        ack_wait_s=10.0,
        max_ack_pending=100_000,
    ),
    "translate": ConsumerSpec("RESULTS", "translate", ("transcript.>",)),
    "translate-speakers": ConsumerSpec("RESULTS", "translate-speakers", ("speaker.>",)),
    "diarize": ConsumerSpec("SPEECH", "diarize", ("audio.speech.>",)),
    "analytics-speech": ConsumerSpec("SPEECH", "analytics-speech", ("vad.>",)),
    "analytics-finals": ConsumerSpec("RESULTS", "analytics-finals", ("transcript.final.>",)),
    "analytics-translations": ConsumerSpec("RESULTS", "analytics-translations", ("translation.>",)),
    "analytics-speakers": ConsumerSpec("RESULTS", "analytics-speakers", ("speaker.>",)),
}
"""Durable consumers by name; the name is also the durable's name."""

SESSIONS_BUCKET: Final = "sessions"
"""KV bucket of ``SessionConfig`` documents, keyed by session id."""

ACCESS_BUCKET: Final = "session_access"
"""KV bucket of the edge's access records: SHA-256 hashes of a session's tokens, by session id."""


def stream_for(subject: str) -> str:
    """The name of the stream that stores ``subject``; KeyError when none does."""
    for spec in STREAMS:
        if any(_matches(pattern, subject) for pattern in spec.subjects):
            return spec.name
    raise KeyError(f"no stream stores subject {subject!r}")


def _matches(pattern: str, subject: str) -> bool:
    want, got = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(got) > index
        if index >= len(got) or (token != "*" and token != got[index]):
            return False
    return len(want) == len(got)
