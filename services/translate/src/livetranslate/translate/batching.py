"""Translating the texts of many sessions together: one engine call per language pair.

An engine call has a fixed cost (a thread hop; for CTranslate2 a batch that
decodes several sentences in about the time of one), so the stage does not
translate each final on its own. It submits a ``Job`` per flushed sentence (or
draft) to the ``Batcher``; the batcher waits a short window after the first job
for others to arrive, then translates everything pending with one call per
(source, target) pair and hands each job its results, in the order the jobs
were submitted.

``translate_requests`` is the synchronous part: glossary placeholders in,
engine call, placeholders out, every output checked against the glossary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from livetranslate.translate._pairs import LanguagePair
from livetranslate.translate.context import Context
from livetranslate.translate.engines import TranslationEngine
from livetranslate.translate.glossary import Glossary

__all__ = ["Batcher", "Job", "Outcome", "Request", "Result", "translate_requests"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    """One text to translate, with what its session asks of it."""

    text: str
    glossary: Glossary = field(default_factory=Glossary)
    context: Context = ()


@dataclass(frozen=True, slots=True)
class Result:
    """A translation, and the glossary terms that did not come out as required."""

    text: str
    missing_terms: tuple[str, ...] = ()
    placeholders_lost: bool = False
    """The model dropped a placeholder, so the text was translated again without."""


Outcome = Result | Exception
"""What a job gets per target: a result, or why there is none."""


def translate_requests(
    engine: TranslationEngine, source: str, target: str, requests: Sequence[Request]
) -> list[Outcome]:
    """One outcome per request, in order, from as few engine calls as possible.

    When the call for all of them fails, each is tried on its own, so that one
    text the model chokes on does not fail the texts of other sessions.
    """
    try:
        return list(_translate(engine, source, target, requests))
    except Exception as exc:
        if len(requests) == 1:
            return [exc]
        _log.warning("batch of %d failed (%r); translating one by one", len(requests), exc)

    return [_one(engine, source, target, request) for request in requests]


def _one(engine: TranslationEngine, source: str, target: str, request: Request) -> Outcome:
    try:
        (result,) = _translate(engine, source, target, [request])
    except Exception as exc:
        return exc

    return result


def _translate(
    engine: TranslationEngine, source: str, target: str, requests: Sequence[Request]
) -> list[Result]:
    protected = [request.glossary.protect(request.text) for request in requests]
    outputs = _call(engine, [p.text for p in protected], source, target, requests)
    restored = [p.restore(output) for p, output in zip(protected, outputs, strict=True)]
    lost = [i for i, r in enumerate(restored) if r.lost]
    again = _call(engine, [requests[i].text for i in lost], source, target, requests, lost)
    texts = [r.text for r in restored]
    for i, text in zip(lost, again, strict=True):
        texts[i] = text

    return [
        Result(text, p.missing(text), i in lost)
        for i, (p, text) in enumerate(zip(protected, texts, strict=True))
    ]


def _call(
    engine: TranslationEngine,
    texts: list[str],
    source: str,
    target: str,
    requests: Sequence[Request],
    which: Sequence[int] | None = None,
) -> list[str]:
    if not texts:
        return []
    chosen = [requests[i] for i in which] if which is not None else list(requests)
    contexts = [request.context for request in chosen]
    if any(contexts):
        return engine.translate(texts, source, target, contexts=contexts)

    return engine.translate(texts, source, target)


@dataclass(eq=False)
class Job:
    """The texts of one flush (or draft) of one session, one request per target."""

    source: str
    requests: Mapping[str, Request]
    finish: Callable[[dict[str, Outcome]], Awaitable[None]]
    """Called with one outcome per target once they are all known."""
    submitted_at: float = field(default_factory=time.monotonic)


class Batcher:
    """Collects jobs from every session and translates them in batches.

    ``run`` is the worker; start it as a task and cancel it to stop. Jobs that
    were waiting are dropped on cancel, unfinished.
    """

    def __init__(
        self,
        engine: TranslationEngine,
        window_s: float = 0.01,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._window_s = window_s
        self._on_batch = on_batch
        self._jobs: list[Job] = []
        self._arrived = asyncio.Event()

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet translated."""
        return len(self._jobs)

    def submit(self, job: Job) -> None:
        self._jobs.append(job)
        self._arrived.set()

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            # Jobs that waited through a previous batch have had their window.
            waited_s = time.monotonic() - self._jobs[0].submitted_at
            if waited_s < self._window_s:
                await asyncio.sleep(self._window_s - waited_s)
            jobs, self._jobs = self._jobs, []
            self._arrived.clear()
            await self._process(jobs)

    async def _process(self, jobs: list[Job]) -> None:
        by_pair: dict[LanguagePair, list[tuple[Job, str]]] = defaultdict(list)
        for job in jobs:
            for target in job.requests:
                by_pair[(job.source, target)].append((job, target))
        pairs = list(by_pair)
        outcomes = await asyncio.gather(
            *(self._translate(pair, by_pair[pair]) for pair in pairs), return_exceptions=True
        )
        results: dict[int, dict[str, Outcome]] = defaultdict(dict)
        for pair, pair_outcomes in zip(pairs, outcomes, strict=True):
            members = by_pair[pair]
            for (job, target), outcome in zip(
                members, _spread(pair_outcomes, members), strict=True
            ):
                results[id(job)][target] = outcome
        if self._on_batch:
            self._on_batch(len(jobs), len(pairs))
        for job in jobs:
            try:
                await job.finish(results[id(job)])
            except Exception:
                _log.exception("finishing a translation job failed")

    async def _translate(self, pair: LanguagePair, members: list[tuple[Job, str]]) -> list[Outcome]:
        requests = [job.requests[target] for job, target in members]

        return await asyncio.to_thread(translate_requests, self._engine, *pair, requests)


def _spread(
    outcomes: list[Outcome] | BaseException, members: list[tuple[Job, str]]
) -> list[Outcome]:
    """The outcomes of one pair's call, or its one failure repeated for every member."""
    if isinstance(outcomes, Exception):
        return [outcomes] * len(members)
    if isinstance(outcomes, BaseException):
        raise outcomes

    return outcomes
