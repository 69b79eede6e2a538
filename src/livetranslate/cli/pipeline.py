"""Bringing up a broker and stages inside this process."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.errors import NoServersError

from livetranslate.cli.stages import StageName, build
from livetranslate.streams import StageRunner
from livetranslate.streams.apply import apply_topology
from livetranslate.streams.server import EmbeddedServer
from livetranslate.streams.stage import running

__all__ = [
    "apply_to",
    "broker",
    "check_reachable",
    "check_settings",
    "ignore_errors",
    "stages",
    "stages_served",
]


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

    Running stages answer NATS service discovery. A second copy started here
    would share a stage's durable consumer and split each session's messages
    with the first, so neither would see a whole session.
    """
    client = await _connect_once(url)
    try:
        found = await running(client, [name.value for name in names])
    finally:
        await client.close()
    return {name for name in names if name.value in found}


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


def check_settings(names: Sequence[StageName]) -> None:
    """Read the named stages' settings now, so that a wrong one stops start-up
    before a broker or a model is started (``SettingsError`` names it)."""
    for name in names:
        build(name)


@contextlib.asynccontextmanager
async def stages(url: str, names: Sequence[StageName]) -> AsyncIterator[StageRunner]:
    """Run the named stages on ``url`` until the block exits."""
    runner = StageRunner(url, [build(name) for name in names])
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()
