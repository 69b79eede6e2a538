"""Bringing up a broker and stages inside this process."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.errors import NoServersError

from livetranslate.cli.stages import CONSUMER, StageName, build
from livetranslate.streams import StageRunner
from livetranslate.streams.apply import apply_topology
from livetranslate.streams.server import EmbeddedServer
from livetranslate.streams.topology import CONSUMERS

__all__ = [
    "apply_to",
    "broker",
    "check_reachable",
    "ignore_errors",
    "stages",
    "stages_served",
]

SERVED_CHECKS = 3
"""Looks at each consumer before a stage counts as not served: a running stage
leaves its consumer without a waiting pull only between two fetches."""
SERVED_CHECK_GAP_S = 0.1


async def check_reachable(url: str) -> None:
    """Fail at once, naming ``url``, when no broker answers there."""
    client = await _connect_once(url)
    await client.close()


async def apply_to(url: str) -> list[str]:
    """Apply the topology to the broker at ``url``; returns what was done."""
    client = await _connect_once(url)
    try:
        return await apply_topology(client)
    finally:
        await client.close()


async def _connect_once(url: str) -> Client:
    try:
        # Two attempts, then NoServersError; nats-py's default error callback
        # would log a traceback per attempt, the caller reports the failure.
        client = await nats.connect(
            url,
            connect_timeout=5,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            error_cb=ignore_errors,
        )
    except (OSError, NoServersError, TimeoutError) as exc:
        raise ConnectionError(
            f"no NATS broker answered at {url} ({type(exc).__name__}); start one with "
            "`livetranslate up`, or pass --nats URL"
        ) from exc
    return client


async def stages_served(url: str, names: Sequence[StageName]) -> set[StageName]:
    """Those of ``names`` that some process already runs on the broker at ``url``.

    A running stage keeps a pull request waiting on its durable consumer. A
    second copy started here would share that consumer and split each
    session's messages with the first, so neither would see a whole session.
    A stage that stopped a moment ago may still count: its last pull request
    lasts until its fetch times out (5 s).
    """
    client = await _connect_once(url)
    try:
        jetstream = client.jetstream()
        served: set[StageName] = set()
        for attempt in range(SERVED_CHECKS):
            for name in names:
                spec = CONSUMERS[CONSUMER[name]]
                info = await jetstream.consumer_info(spec.stream, spec.durable)
                if info.num_waiting:
                    served.add(name)
            if attempt + 1 < SERVED_CHECKS:
                await asyncio.sleep(SERVED_CHECK_GAP_S)
        return served
    finally:
        await client.close()


async def ignore_errors(_: Exception) -> None:
    """A nats-py error callback for clients whose caller reports failures itself."""


@contextlib.asynccontextmanager
async def broker(
    url: str | None, data_dir: Path | None, port: int | None = None
) -> AsyncIterator[str]:
    """Yield a broker URL: ``url`` as given, else an embedded server's, topology applied.

    The embedded server takes ``port``, or a free one when that is None.
    """
    if url is not None:
        await apply_to(url)  # fails fast, with the URL, when nothing answers there
        yield url
        return
    with contextlib.ExitStack() as stack:
        folder = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        async with EmbeddedServer(folder, port) as server:
            await apply_to(server.url)
            yield server.url


@contextlib.asynccontextmanager
async def stages(url: str, names: Sequence[StageName]) -> AsyncIterator[StageRunner]:
    """Run the named stages on ``url`` until the block exits."""
    runner = StageRunner(url, [build(name) for name in names])
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()
