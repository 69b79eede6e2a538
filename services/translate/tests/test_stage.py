"""The translate stage on a real broker: transcripts in, translations or dead letters out.

Session configs go to the session bucket before the transcripts are published.
The stage consumes ``transcript.>`` one message at a time in stream order, so
once a transcript published last has been translated, everything published
before it has been handled: a test learns that something was not published
by publishing a later transcript and waiting for its translation.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from livetranslate.contracts import decode, encode, subjects, v1
from livetranslate.streams import StageRunner
from livetranslate.streams.sessions import SessionStore
from livetranslate.translate.engines import BergamotEngine, Router
from livetranslate.translate.stage import TranslateSettings, TranslateStage
from livetranslate.translate.testing import build_tiny_marian

pytestmark = [pytest.mark.broker, pytest.mark.model]

TIMEOUT_S = 20.0
QUIET_S = 0.5
"""How long a read waits for messages that, if they exist, are already in the stream."""

SENTENCE = "The meeting is tomorrow and we speak about the house."
PORTUGUESE = frozenset(
    {"a", "o", "os", "as", "é", "e", "de", "da", "do", "em", "um", "uma", "que", "não"}
    | {"reunião", "amanhã", "casa", "sobre", "falamos", "falaremos"}
)


def _session_id() -> str:
    return f"tl-{uuid.uuid4().hex[:12]}"


def _transcript(
    session_id: str,
    utterance_id: str,
    text: str,
    *,
    kind: str = "final",
    revision: int = 0,
    language: str = "en",
    dropped: str | None = None,
) -> v1.Transcript:
    return v1.Transcript.model_validate(
        {
            "session_id": session_id,
            "utterance_id": utterance_id,
            "kind": kind,
            "revision": revision,
            "text": text,
            "language": language,
            "start_s": 0.0,
            "end_s": 2.0,
            "dropped": dropped,
        }
    )


async def _configure(
    client: Client, session_id: str, *targets: str, partials: bool = False
) -> None:
    store = SessionStore(client)
    await store.open()
    config = v1.SessionConfig(
        session_id=session_id, target_languages=targets, translate_partials=partials
    )
    await store.put(config)


async def _publish(client: Client, *transcripts: v1.Transcript) -> None:
    for transcript in transcripts:
        body, headers = encode(transcript)
        subject = subjects.transcript(transcript.kind, transcript.session_id)
        await client.jetstream().publish(subject, body, headers=headers)


async def _read(
    client: Client, subject: str, count: int, timeout_s: float = TIMEOUT_S
) -> list[v1.Contract]:
    """The first ``count`` contracts on ``subject``; fewer when ``timeout_s`` passes first."""
    subscription = await client.jetstream().subscribe(subject, ordered_consumer=True)
    deadline = time.monotonic() + timeout_s
    found: list[v1.Contract] = []
    with contextlib.suppress(nats.errors.TimeoutError):
        while len(found) < count:
            msg = await subscription.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
            found.append(decode(msg.headers, msg.data).contract)
    await subscription.unsubscribe()
    return found


async def _translations(
    client: Client, session_id: str, count: int, timeout_s: float = TIMEOUT_S
) -> list[v1.Translation]:
    found = await _read(client, f"translation.*.{session_id}", count, timeout_s)
    return [t for t in found if isinstance(t, v1.Translation)]


async def _dead_letters(
    client: Client, session_id: str, timeout_s: float = TIMEOUT_S
) -> list[v1.DeadLetter]:
    found = await _read(client, subjects.dead_letter("translate", session_id), 1, timeout_s)
    return [letter for letter in found if isinstance(letter, v1.DeadLetter)]


async def _translated_after(client: Client) -> None:
    """Publish a final in a fresh session and wait for its translation.

    Once it is out, the stage has handled everything published before it.
    """
    session_id = _session_id()
    await _configure(client, session_id, "pt")
    await _publish(client, _transcript(session_id, "u00001", SENTENCE))
    assert await _translations(client, session_id, 1), f"{session_id} was not translated"


@pytest.fixture(scope="module")
def bergamot() -> Router:
    """One Bergamot engine for the module: loading its models is the slow part."""
    return Router([BergamotEngine()])


@contextlib.asynccontextmanager
async def _translate_running(url: str, stage: TranslateStage) -> AsyncIterator[None]:
    runner = StageRunner(url, [stage])
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


def _looks_portuguese(text: str) -> bool:
    words = set(text.lower().strip(".").replace(",", " ").split())
    return len(words & PORTUGUESE) >= 3


async def test_final_is_translated_into_the_session_target_language(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, _transcript(session_id, "u00001", SENTENCE))
        (translation,) = await _translations(nats_client, session_id, 1)

    assert translation.utterance_ids == ("u00001",)
    assert (translation.kind, translation.source_language, translation.target_language) == (
        "final",
        "en",
        "pt",
    )
    assert translation.source_text == SENTENCE
    assert translation.engine == "bergamot"
    assert _looks_portuguese(translation.text), translation.text


async def test_ctranslate2_model_from_settings_serves_its_pair(
    nats_url: str, nats_client: Client, tmp_path: Path
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "de")
    settings = TranslateSettings(
        ct2_models={"en-de": build_tiny_marian(tmp_path / "en-de")}, bergamot=False
    )

    async with _translate_running(nats_url, TranslateStage(settings)):
        await _publish(nats_client, _transcript(session_id, "u00001", "the cat sees the dog"))
        (translation,) = await _read(nats_client, subjects.translation("de", session_id), 1)

    assert isinstance(translation, v1.Translation)
    assert translation.engine == "ctranslate2"
    assert translation.utterance_ids == ("u00001",)
    assert translation.text.strip()


async def test_final_without_text_is_not_translated(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    blank = [
        _transcript(session_id, "u00001", ""),
        _transcript(session_id, "u00002", "   "),
        _transcript(session_id, "u00003", "Thank you.", dropped="repetition"),
    ]

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, *blank, _transcript(session_id, "u00004", SENTENCE))
        (first,) = await _translations(nats_client, session_id, 1)

    assert first.utterance_ids == ("u00004",)


async def test_partial_is_not_translated_when_the_session_did_not_ask(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    partial = _transcript(session_id, "u00001", "The meeting is", kind="partial")
    final = _transcript(session_id, "u00001", SENTENCE, revision=1)

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, partial, final)
        (first,) = await _translations(nats_client, session_id, 1)

    assert first.kind == "final"


async def test_partial_is_translated_as_a_draft_when_the_session_asks(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt", partials=True)
    partial = _transcript(session_id, "u00001", "The meeting is", kind="partial")
    final = _transcript(session_id, "u00001", SENTENCE, revision=1)

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, partial, final)
        translations = await _translations(nats_client, session_id, 2)

    assert [(t.kind, t.source_text) for t in translations] == [
        ("partial", "The meeting is"),
        ("final", SENTENCE),
    ]


async def test_unsupported_pair_is_dead_lettered_naming_the_pair(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "ja")

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, _transcript(session_id, "u00001", SENTENCE))
        (letter,) = await _dead_letters(nats_client, session_id)

    assert letter.stage == "translate"
    assert letter.subject == subjects.transcript("final", session_id)
    assert "en->ja" in letter.reason


async def test_unsupported_target_does_not_stop_the_other_targets(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "ja", "pt")

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, _transcript(session_id, "u00001", SENTENCE))
        await _translated_after(nats_client)
        letters = await _dead_letters(nats_client, session_id, QUIET_S)
        translations = await _translations(nats_client, session_id, 1, QUIET_S)

    assert ["en->ja" in letter.reason for letter in letters] == [True]
    assert [t.target_language for t in translations] == ["pt"]


async def test_transcript_in_an_unreadable_language_is_dead_lettered_at_once(
    nats_url: str, nats_client: Client, bergamot: Router
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")

    async with _translate_running(nats_url, TranslateStage(router=bergamot)):
        await _publish(nats_client, _transcript(session_id, "u00001", SENTENCE, language="english"))
        await _translated_after(nats_client)
        letters = await _dead_letters(nats_client, session_id, QUIET_S)

    assert [(letter.deliveries, "'english'" in letter.reason) for letter in letters] == [(1, True)]
