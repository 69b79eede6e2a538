"""The translate stage on a real broker: sentences, context, glossary, drafts, live config.

Most tests use an engine that writes ``[<target>] <text>``, so that what the
stage sends and publishes can be compared exactly; the tiny CTranslate2 models
and Bergamot show the same paths with real engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from livetranslate.contracts import decode, encode, subjects, v1
from livetranslate.streams import StageRunner
from livetranslate.streams.sessions import SessionStore
from livetranslate.translate.context import Context, ContextPair
from livetranslate.translate.engines import (
    BergamotEngine,
    CTranslate2Model,
    LanguagePair,
    Router,
)
from livetranslate.translate.stage import TranslateSettings, TranslateStage
from livetranslate.translate.testing import build_tiny_marian, build_tiny_nllb

pytestmark = [pytest.mark.broker]

TIMEOUT_S = 20.0
QUIET_S = 0.5
"""How long a read waits for messages that, if they exist, are already in the stream."""


class _Tagging:
    """Writes ``[<target>] <text>`` and records every call with its contexts."""

    name = "tagging"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str, list[Context]]] = []

    def pairs(self) -> frozenset[LanguagePair]:
        return frozenset({("en", "pt"), ("en", "de"), ("pt", "en")})

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        self.calls.append((list(texts), target, list(contexts)))
        return [f"[{target}] {text}" if text.strip() else "" for text in texts]


def _session_id() -> str:
    return f"ts-{uuid.uuid4().hex[:12]}"


def _final(
    session_id: str,
    utterance_id: str,
    text: str,
    *,
    start_s: float = 0.0,
    language: str | None = "en",
) -> v1.Transcript:
    return v1.Transcript(
        session_id=session_id,
        utterance_id=utterance_id,
        kind="final",
        revision=9,
        text=text,
        language=language,
        start_s=start_s,
        end_s=start_s + 1.0,
    )


def _partial(session_id: str, utterance_id: str, text: str, revision: int) -> v1.Transcript:
    return v1.Transcript(
        session_id=session_id,
        utterance_id=utterance_id,
        kind="partial",
        revision=revision,
        text=text,
        language="en",
        start_s=0.0,
        end_s=1.0,
    )


async def _configure(
    client: Client,
    session_id: str,
    *targets: str,
    partials: bool = False,
    glossary: dict[str, dict[str, str]] | None = None,
) -> v1.SessionConfig:
    store = SessionStore(client)
    await store.open()
    config = v1.SessionConfig(
        session_id=session_id,
        target_languages=targets,
        translate_partials=partials,
        glossary=glossary or {},
    )
    await store.put(config)
    return config


async def _publish(client: Client, *transcripts: v1.Transcript) -> None:
    for transcript in transcripts:
        body, headers = encode(transcript)
        subject = subjects.transcript(transcript.kind, transcript.session_id)
        await client.jetstream().publish(subject, body, headers=headers)


async def _publish_turns(client: Client, *turns: v1.SpeakerTurn) -> None:
    for turn in turns:
        body, headers = encode(turn)
        await client.jetstream().publish(subjects.speaker(turn.session_id), body, headers=headers)


def _turn(session_id: str, utterance_id: str, speaker: str, start_s: float) -> v1.SpeakerTurn:
    return v1.SpeakerTurn(
        session_id=session_id,
        utterance_id=utterance_id,
        speaker=speaker,
        start_s=start_s,
        end_s=start_s + 1.0,
    )


async def _until_turns(stage: TranslateStage, count: int) -> None:
    """Wait until the stage has received ``count`` speaker turns."""
    deadline = time.monotonic() + TIMEOUT_S
    while stage.metrics.speaker_turns < count:
        assert time.monotonic() < deadline, f"the stage never saw {count} speaker turns"
        await asyncio.sleep(0.01)


async def _translations(
    client: Client, session_id: str, count: int, timeout_s: float = TIMEOUT_S
) -> list[v1.Translation]:
    """The first ``count`` translations of the session; fewer when ``timeout_s`` passes."""
    subscription = await client.jetstream().subscribe(
        f"translation.*.{session_id}", ordered_consumer=True
    )
    deadline = time.monotonic() + timeout_s
    found: list[v1.Translation] = []
    with contextlib.suppress(nats.errors.TimeoutError):
        while len(found) < count:
            msg = await subscription.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
            contract = decode(msg.headers, msg.data).contract
            assert isinstance(contract, v1.Translation)
            found.append(contract)
    await subscription.unsubscribe()
    return found


async def _settled(
    client: Client, session_id: str, expected: int, quiet_s: float = QUIET_S
) -> list[v1.Translation]:
    """The session's translations once ``expected`` are out and ``quiet_s`` brings no more."""
    await _translations(client, session_id, expected)
    return await _translations(client, session_id, expected + 1, quiet_s)


@contextlib.asynccontextmanager
async def _running(url: str, stage: TranslateStage) -> AsyncIterator[StageRunner]:
    runner = StageRunner(url, [stage])
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def _until_seen(runner: StageRunner, config: v1.SessionConfig) -> None:
    """Wait until the stage's watched copy of the session config is ``config``."""
    for _ in range(200):
        if await runner.sessions.get(config.session_id) == config:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the stage never saw {config}")


def _stage(engine: _Tagging, **settings: Any) -> TranslateStage:
    return TranslateStage(TranslateSettings(**settings), router=Router([engine]))


@pytest.fixture(scope="module")
def marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("marian"))


# Sentences


async def test_two_finals_of_one_sentence_make_one_translation_naming_both(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    first = _final(session_id, "u00001", "so what we did", start_s=0.0)
    second = _final(session_id, "u00002", "was ship it.", start_s=2.0)

    async with _running(nats_url, _stage(engine := _Tagging(), join_wait_s=0.5)):
        await _publish(nats_client, first, second)
        translations = await _settled(nats_client, session_id, 1, quiet_s=1.0)

    (translation,) = translations
    assert translation.utterance_ids == ("u00001", "u00002")
    assert translation.source_text == "so what we did was ship it."
    assert translation.text == "[pt] so what we did was ship it."
    assert [call[0] for call in engine.calls] == [["so what we did was ship it."]]


async def test_a_final_that_ends_a_sentence_is_translated_without_waiting(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")

    async with _running(nats_url, _stage(_Tagging(), join_wait_s=8.0)):
        started = time.monotonic()
        await _publish(nats_client, _final(session_id, "u00001", "We met today."))
        (translation,) = await _translations(nats_client, session_id, 1)
        took_s = time.monotonic() - started

    assert translation.utterance_ids == ("u00001",)
    assert took_s < 4.0


async def test_a_dangling_fragment_is_flushed_when_the_wait_runs_out(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    stage = _stage(_Tagging(), join_wait_s=0.4)

    async with _running(nats_url, stage):
        started = time.monotonic()
        await _publish(nats_client, _final(session_id, "u00001", "and then we"))
        (translation,) = await _translations(nats_client, session_id, 1)
        took_s = time.monotonic() - started

    assert translation.text == "[pt] and then we"
    assert took_s >= 0.4
    assert translation.latency_s >= 0.4
    assert stage.metrics.flushed_by_wait == 1


async def test_a_redelivered_final_is_not_translated_twice(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    met = _final(session_id, "u00001", "We met.")
    stage = _stage(_Tagging())

    async with _running(nats_url, stage):
        await _publish(nats_client, met, met, _final(session_id, "u00002", "Done.", start_s=2))
        translations = await _settled(nats_client, session_id, 2)

    assert [t.utterance_ids for t in translations] == [("u00001",), ("u00002",)]
    assert stage.metrics.duplicates == 1


async def test_a_fragment_delivered_twice_is_joined_once(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    fragment = _final(session_id, "u00001", "so we")
    rest = _final(session_id, "u00002", "left.", start_s=2.0)

    async with _running(nats_url, _stage(_Tagging())):
        await _publish(nats_client, fragment, fragment, rest)
        translations = await _settled(nats_client, session_id, 1)

    assert [(t.utterance_ids, t.source_text) for t in translations] == [
        (("u00001", "u00002"), "so we left.")
    ]


async def test_finals_of_several_sessions_share_one_engine_call(
    nats_url: str, nats_client: Client
) -> None:
    session_ids = [_session_id() for _ in range(4)]
    for session_id in session_ids:
        await _configure(nats_client, session_id, "pt")
    engine = _Tagging()

    async with _running(nats_url, _stage(engine, batch_window_s=0.3)):
        await _publish(nats_client, *(_final(s, "u00001", f"Hello {s}.") for s in session_ids))
        for session_id in session_ids:
            assert await _translations(nats_client, session_id, 1)

    assert [sorted(call[0]) for call in engine.calls] == [
        sorted(f"Hello {s}." for s in session_ids)
    ]


async def test_a_five_thousand_character_final_is_translated_whole(
    nats_url: str, nats_client: Client, marian: Path
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "de")
    text = (" ".join(["the big red cat sees the small blue dog near the river."] * 90))[:4999]
    settings = TranslateSettings(ct2_models={"en-de": marian}, bergamot=False)

    async with _running(nats_url, TranslateStage(settings)):
        await _publish(nats_client, _final(session_id, "u00001", text + "."))
        (translation,) = await _translations(nats_client, session_id, 1)

    assert len(translation.source_text) == 5000
    assert translation.utterance_ids == ("u00001",)
    assert translation.text


# Context


async def test_the_previous_sentence_and_its_translation_go_with_the_next(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    engine = _Tagging()

    async with _running(nats_url, _stage(engine)):
        await _publish(nats_client, _final(session_id, "u00001", "We met."))
        await _translations(nats_client, session_id, 1)
        await _publish(nats_client, _final(session_id, "u00002", "It went well.", start_s=2))
        await _translations(nats_client, session_id, 2)

    assert [call[2] for call in engine.calls] == [
        [],
        [(ContextPair("We met.", "[pt] We met."),)],
    ]


async def test_each_speaker_gets_only_their_own_earlier_sentences_as_context(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    said = [
        ("S1", "We met."),
        ("S2", "I was late."),
        ("S1", "It went well."),
        ("S2", "Sorry about that."),
        ("S1", "See you."),
    ]
    stage = _stage(engine := _Tagging(), speaker_wait_s=3.0)

    async with _running(nats_url, stage):
        for number, (speaker, text) in enumerate(said, start=1):
            utterance_id, start_s = f"u{number:05d}", 2.0 * number
            await _publish_turns(nats_client, _turn(session_id, utterance_id, speaker, start_s))
            if number == 1:
                # Before its first label the session is not known to be diarized.
                await _until_turns(stage, 1)
            await _publish(nats_client, _final(session_id, utterance_id, text, start_s=start_s))
            await _translations(nats_client, session_id, number)

    def pair(text: str) -> ContextPair:
        return ContextPair(text, f"[pt] {text}")

    assert [call[2] for call in engine.calls] == [
        [],
        [],
        [(pair("We met."),)],
        [(pair("I was late."),)],
        [(pair("We met."), pair("It went well."))],
    ]
    assert stage.metrics.speaker_waits_expired == 0


async def test_a_final_waits_for_a_label_that_comes_after_it(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    stage = _stage(engine := _Tagging(), speaker_wait_s=3.0)

    async with _running(nats_url, stage):
        await _publish_turns(nats_client, _turn(session_id, "u00001", "S1", 0.0))
        await _until_turns(stage, 1)
        await _publish(nats_client, _final(session_id, "u00001", "We met."))
        await _translations(nats_client, session_id, 1)
        await _publish(nats_client, _final(session_id, "u00002", "I was late.", start_s=2.0))
        await asyncio.sleep(0.3)
        await _publish_turns(nats_client, _turn(session_id, "u00002", "S2", 2.0))
        await _translations(nats_client, session_id, 2)

    # Without waiting, S2's sentence would have had the session's "We met." as context.
    assert [call[2] for call in engine.calls] == [[], []]
    assert stage.metrics.speaker_waits_expired == 0


async def test_without_speaker_turns_context_is_the_sessions_and_nothing_waits(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    engine = _Tagging()

    async with _running(nats_url, _stage(engine, speaker_wait_s=5.0)):
        await _publish(nats_client, _final(session_id, "u00001", "We met."))
        await _translations(nats_client, session_id, 1)
        started = time.monotonic()
        await _publish(nats_client, _final(session_id, "u00002", "I was late.", start_s=2))
        await _translations(nats_client, session_id, 2)
        took_s = time.monotonic() - started

    assert [call[2] for call in engine.calls] == [
        [],
        [(ContextPair("We met.", "[pt] We met."),)],
    ]
    assert took_s < 2.5


async def test_a_speaker_change_ends_the_pending_sentence(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    stage = _stage(_Tagging(), join_wait_s=8.0)

    async with _running(nats_url, stage):
        await _publish_turns(
            nats_client,
            _turn(session_id, "u00001", "S1", 0.0),
            _turn(session_id, "u00002", "S2", 2.0),
        )
        await _until_turns(stage, 2)
        await _publish(
            nats_client,
            _final(session_id, "u00001", "so what we did"),
            _final(session_id, "u00002", "was ship it.", start_s=2.0),
        )
        translations = await _settled(nats_client, session_id, 2)

    assert [(t.utterance_ids, t.source_text) for t in translations] == [
        (("u00001",), "so what we did"),
        (("u00002",), "was ship it."),
    ]
    assert stage.metrics.flushed_by_wait == 0


def _spoken(
    session_id: str, utterance_id: str, words: Sequence[tuple[str, float]], end_s: float
) -> v1.Transcript:
    """A final with word times: each word lasts until the next one starts."""
    starts = [start_s for _, start_s in words]
    timed = tuple(
        v1.Word(text=text, start_s=start_s, end_s=end, probability=0.9)
        for (text, start_s), end in zip(words, [*starts[1:], end_s], strict=True)
    )
    return v1.Transcript(
        session_id=session_id,
        utterance_id=utterance_id,
        kind="final",
        revision=9,
        text=" ".join(text for text, _ in words),
        words=timed,
        language="en",
        start_s=starts[0],
        end_s=end_s,
    )


def _turn_of(
    session_id: str, utterance_id: str, speaker: str, span: tuple[float, float], turns: int
) -> v1.SpeakerTurn:
    start_s, end_s = span
    return v1.SpeakerTurn(
        session_id=session_id,
        utterance_id=utterance_id,
        speaker=speaker,
        start_s=start_s,
        end_s=end_s,
        turns=turns,
    )


async def test_each_speaker_of_one_utterance_gets_their_own_translation(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    # S1 asks, S2 answers inside the same utterance, and S2 goes on in the next one.
    first = _spoken(
        session_id,
        "u00001",
        [("Are", 0.0), ("you", 0.3), ("coming?", 0.6), ("Yes,", 1.8), ("I", 2.1)],
        end_s=2.4,
    )
    second = _spoken(session_id, "u00002", [("am", 3.0), ("here.", 3.3)], end_s=3.8)
    third = _spoken(session_id, "u00003", [("Good.", 5.0)], end_s=5.5)
    stage = _stage(engine := _Tagging(), speaker_wait_s=3.0, join_wait_s=5.0)

    async with _running(nats_url, stage):
        await _publish_turns(
            nats_client,
            _turn_of(session_id, "u00001", "S1", (0.0, 1.4), turns=2),
            _turn_of(session_id, "u00001", "S2", (1.6, 2.4), turns=2),
            _turn_of(session_id, "u00002", "S2", (2.9, 3.8), turns=1),
            _turn_of(session_id, "u00003", "S1", (4.9, 5.5), turns=1),
        )
        await _until_turns(stage, 4)
        await _publish(nats_client, first, second)
        translations = await _settled(nats_client, session_id, 2)
        # A redelivery of the split final translates nothing again.
        await _publish(nats_client, first)
        again = await _settled(nats_client, session_id, 2)
        await _publish(nats_client, third)
        await _translations(nats_client, session_id, 3)

    assert [
        (t.utterance_ids, t.speaker, t.source_text, t.start_s, t.end_s) for t in translations
    ] == [
        (("u00001",), "S1", "Are you coming?", 0.0, 1.8),
        (("u00001", "u00002"), "S2", "Yes, I am here.", 1.8, 3.8),
    ]
    assert [t.text for t in translations] == ["[pt] Are you coming?", "[pt] Yes, I am here."]
    assert len(again) == 2
    assert stage.metrics.duplicates == 1
    # S1's part of the split utterance is S1's context, S2's answer is not.
    assert engine.calls[-1][0] == ["Good."]
    assert engine.calls[-1][2] == [(ContextPair("Are you coming?", "[pt] Are you coming?"),)]


class _Failing(_Tagging):
    """Fails the first ``times`` calls that hold ``text``."""

    def __init__(self, text: str, times: int) -> None:
        super().__init__()
        self._text = text
        self._times = times

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        if self._text in texts and self._times > 0:
            self._times -= 1
            raise RuntimeError("the engine failed")
        return super().translate(texts, source, target, contexts=contexts)


async def test_a_failed_part_is_translated_again_and_the_other_part_is_not_repeated(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    final = _spoken(
        session_id,
        "u00001",
        [("Are", 0.0), ("you", 0.3), ("coming?", 0.6), ("Yes,", 1.8), ("I", 2.1), ("am.", 2.3)],
        end_s=2.8,
    )
    # Twice: the batcher tries a failed batch again sentence by sentence.
    stage = _stage(engine := _Failing("Yes, I am.", times=2), speaker_wait_s=3.0)

    async with _running(nats_url, stage):
        await _publish_turns(
            nats_client,
            _turn_of(session_id, "u00001", "S1", (0.0, 1.4), turns=2),
            _turn_of(session_id, "u00001", "S2", (1.6, 2.8), turns=2),
        )
        await _until_turns(stage, 2)
        await _publish(nats_client, final)
        translations = await _settled(nats_client, session_id, 2, quiet_s=1.5)

    assert [(t.speaker, t.source_text) for t in translations] == [
        ("S1", "Are you coming?"),
        ("S2", "Yes, I am."),
    ]
    assert stage.metrics.failures == 1
    # The redelivered final was split again; the stream dropped S1's repeated translation.
    assert "Yes, I am." in engine.calls[-1][0]


# Session config, read live


async def test_a_target_added_mid_session_applies_from_the_next_final(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")

    async with _running(nats_url, _stage(_Tagging())) as runner:
        await _publish(nats_client, _final(session_id, "u00001", "We met."))
        await _translations(nats_client, session_id, 1)
        await _until_seen(runner, await _configure(nats_client, session_id, "pt", "de"))
        await _publish(nats_client, _final(session_id, "u00002", "It went well.", start_s=2))
        await _translations(nats_client, session_id, 3)
        await _until_seen(runner, await _configure(nats_client, session_id, "de"))
        await _publish(nats_client, _final(session_id, "u00003", "Bye.", start_s=4))
        translations = await _settled(nats_client, session_id, 4)

    assert [(t.utterance_ids[0], t.target_language) for t in translations] == [
        ("u00001", "pt"),
        ("u00002", "pt"),
        ("u00002", "de"),
        ("u00003", "de"),
    ]


async def test_regional_and_posix_spellings_of_the_source_meet_on_one_code(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt", "en")
    finals = [
        _final(session_id, "u00001", "Hello.", language="en-US"),
        _final(session_id, "u00002", "Bye.", start_s=2, language="en_GB.UTF-8"),
    ]

    async with _running(nats_url, _stage(_Tagging())):
        await _publish(nats_client, *finals)
        translations = await _settled(nats_client, session_id, 2)

    # "en" is also a target: translating English into English is skipped.
    assert [(t.source_language, t.target_language) for t in translations] == [("en", "pt")] * 2


# Glossary


async def test_a_glossary_term_comes_out_as_specified_with_ctranslate2(
    nats_url: str, nats_client: Client, tmp_path: Path
) -> None:
    # The model writes the placeholder at every step, as a trained one copies it.
    folder = build_tiny_marian(tmp_path / "copies", always_writes="ZX0")
    session_id = _session_id()
    await _configure(nats_client, session_id, "de", glossary={"de": {"cat": "Katze"}})
    stage = TranslateStage(TranslateSettings(ct2_models={"en-de": folder}, bergamot=False))

    async with _running(nats_url, stage):
        await _publish(nats_client, _final(session_id, "u00001", "the cat sees the dog."))
        (translation,) = await _translations(nats_client, session_id, 1)

    assert translation.text == "Katze"
    assert stage.metrics.glossary_misses == 0


async def test_a_glossary_term_that_does_not_come_out_is_counted(
    nats_url: str, nats_client: Client, marian: Path
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "de", glossary={"de": {"cat": "Katze"}})
    stage = TranslateStage(TranslateSettings(ct2_models={"en-de": marian}, bergamot=False))

    async with _running(nats_url, stage):
        await _publish(nats_client, _final(session_id, "u00001", "the cat sees the dog."))
        (translation,) = await _translations(nats_client, session_id, 1)

    assert translation.text and "Katze" not in translation.text
    assert stage.metrics.glossary_misses == 1


@pytest.mark.model
async def test_a_glossary_term_comes_out_as_specified_with_bergamot(
    nats_url: str, nats_client: Client
) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt", glossary={"pt-BR": {"pipeline": "pipeline"}})
    stage = TranslateStage(router=Router([BergamotEngine()]))

    async with _running(nats_url, stage):
        await _publish(nats_client, _final(session_id, "u00001", "The pipeline is ready."))
        (translation,) = await _translations(nats_client, session_id, 1)

    # Unguided, the model writes "O gasoduto está pronto."
    assert translation.text == "O pipeline está pronto."
    assert stage.metrics.glossary_misses == 0


# Drafts


async def test_drafts_are_rate_limited_per_session(nats_url: str, nats_client: Client) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt", partials=True)
    stage = _stage(_Tagging(), draft_interval_s=0.6)

    async with _running(nats_url, stage):
        await _publish(
            nats_client,
            *(_partial(session_id, "u00001", f"We met {n}", n) for n in range(3)),
        )
        await _translations(nats_client, session_id, 1)
        await asyncio.sleep(0.7)
        await _publish(
            nats_client,
            _partial(session_id, "u00001", "We met 3", 3),
            _final(session_id, "u00001", "We met three times."),
        )
        translations = await _settled(nats_client, session_id, 3)

    assert [(t.kind, t.source_text) for t in translations] == [
        ("partial", "We met 0"),
        ("partial", "We met 3"),
        ("final", "We met three times."),
    ]
    assert stage.metrics.drafts_skipped == 2


async def test_a_partial_after_its_final_gets_no_draft(nats_url: str, nats_client: Client) -> None:
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt", partials=True)

    async with _running(nats_url, _stage(_Tagging(), draft_interval_s=0.0)):
        await _publish(
            nats_client,
            _final(session_id, "u00001", "We met."),
            _partial(session_id, "u00001", "We met", 3),
        )
        translations = await _settled(nats_client, session_id, 1)

    assert [t.kind for t in translations] == ["final"]


# A multilingual model


async def test_an_nllb_style_model_with_language_tokens_translates_end_to_end(
    nats_url: str, nats_client: Client, tmp_path: Path
) -> None:
    folder = build_tiny_nllb(tmp_path / "nllb")
    session_id = _session_id()
    await _configure(nats_client, session_id, "pt")
    model = CTranslate2Model(folder=folder, family="nllb")
    stage = TranslateStage(TranslateSettings(ct2_models={"en-pt": model}, bergamot=False))

    async with _running(nats_url, stage):
        await _publish(nats_client, _final(session_id, "u00001", "the cat sees the dog."))
        await _publish(nats_client, _final(session_id, "u00002", "we speak today.", start_s=2))
        translations = await _translations(nats_client, session_id, 2)

    assert [t.utterance_ids for t in translations] == [("u00001",), ("u00002",)]
    assert all(t.engine == "ctranslate2" and t.text for t in translations)
    # The forced language token is cut off (random weights may still write one later).
    assert not any(t.text.startswith("por_Latn") for t in translations)
