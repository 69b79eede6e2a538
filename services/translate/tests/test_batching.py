"""translate_requests and Batcher: many sessions' texts, few engine calls, glossary kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from livetranslate.translate.batching import (
    Batcher,
    Job,
    Outcome,
    Request,
    Result,
    translate_requests,
)
from livetranslate.translate.context import Context, ContextPair
from livetranslate.translate.engines import LanguagePair, Router, TranslationFailed
from livetranslate.translate.glossary import Glossary


class _Echo:
    """Writes ``<target>`` before each text; fails on "boom"; drops "ZX" codes on "lossy"."""

    name = "echo"

    def __init__(self, *pairs: LanguagePair) -> None:
        self._pairs = frozenset(pairs or {("en", "pt"), ("en", "de")})
        self.calls: list[tuple[list[str], str, list[Context]]] = []

    def pairs(self) -> frozenset[LanguagePair]:
        return self._pairs

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        self.calls.append((list(texts), target, list(contexts)))
        if any("boom" in text for text in texts):
            raise TranslationFailed("boom")
        return [self._one(text, target) for text in texts]

    @staticmethod
    def _one(text: str, target: str) -> str:
        if "lossy" in text:
            text = " ".join(word for word in text.split() if not word.startswith("ZX"))
        return f"<{target}> {text}"


def test_glossary_terms_travel_as_placeholders_and_come_back() -> None:
    engine = _Echo()
    request = Request("the pipeline works", Glossary({"pipeline": "esteira"}))

    (result,) = translate_requests(engine, "en", "pt", [request])

    assert engine.calls[0][0] == ["the ZX0 works"]
    assert result == Result("<pt> the esteira works")


def test_a_lost_placeholder_sends_the_text_again_without_and_is_reported() -> None:
    engine = _Echo()
    request = Request("lossy pipeline", Glossary({"pipeline": "esteira"}))

    (result,) = translate_requests(engine, "en", "pt", [request])

    assert [call[0] for call in engine.calls] == [["lossy ZX0"], ["lossy pipeline"]]
    assert isinstance(result, Result)
    assert result.text == "<pt> lossy pipeline"
    assert result.placeholders_lost and result.missing_terms == ("pipeline",)


def test_one_failing_text_does_not_fail_the_others() -> None:
    engine = _Echo()
    requests = [Request("fine"), Request("boom"), Request("also fine")]

    outcomes = translate_requests(engine, "en", "pt", requests)

    assert outcomes[0] == Result("<pt> fine") and outcomes[2] == Result("<pt> also fine")
    assert isinstance(outcomes[1], TranslationFailed)


def test_contexts_reach_the_engine_only_when_there_are_some() -> None:
    engine = _Echo()
    earlier = (ContextPair("Hello.", "Olá."),)

    translate_requests(engine, "en", "pt", [Request("a"), Request("b")])
    translate_requests(engine, "en", "pt", [Request("a"), Request("b", context=earlier)])

    assert [call[2] for call in engine.calls] == [[], [(), earlier]]


async def test_jobs_of_several_sessions_share_one_call_per_pair() -> None:
    engine = _Echo()
    batcher = Batcher(Router([engine]), window_s=0.05)
    finished: list[tuple[str, dict[str, Outcome]]] = []

    def job(name: str, targets: Sequence[str]) -> Job:
        async def finish(outcomes: dict[str, Outcome]) -> None:
            finished.append((name, outcomes))

        return Job("en", {target: Request(name) for target in targets}, finish)

    worker = asyncio.create_task(batcher.run())
    for name, targets in [("s1", ["pt"]), ("s2", ["pt", "de"]), ("s3", ["de"])]:
        batcher.submit(job(name, targets))
    for _ in range(100):
        if len(finished) == 3:
            break
        await asyncio.sleep(0.01)
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker

    assert sorted((call[1], call[0]) for call in engine.calls) == [
        ("de", ["s2", "s3"]),
        ("pt", ["s1", "s2"]),
    ]
    assert [name for name, _ in finished] == ["s1", "s2", "s3"]
    assert finished[1][1] == {"pt": Result("<pt> s2"), "de": Result("<de> s2")}


@pytest.mark.parametrize("window_s", [0.0, 0.02])
async def test_a_lone_job_is_not_held_much_longer_than_the_window(window_s: float) -> None:
    batcher = Batcher(Router([_Echo()]), window_s=window_s)
    done = asyncio.Event()

    async def finish(outcomes: dict[str, Outcome]) -> None:
        done.set()

    worker = asyncio.create_task(batcher.run())
    started = asyncio.get_running_loop().time()
    batcher.submit(Job("en", {"pt": Request("hi")}, finish))
    await asyncio.wait_for(done.wait(), 5)
    took_s = asyncio.get_running_loop().time() - started
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker

    assert window_s <= took_s < window_s + 0.5
