"""Many viewers on one session: how long a final takes from its publish to each browser.

    uv run python -m livetranslate.edge.loadtest [--viewers 200] [--finals 200]

Loopback only, and bounded in count and time. It starts a broker (unless
``--nats``) and the edge in a child process (unless ``--edge``), creates a
session through ``POST /api/sessions``, opens the viewer sockets with its
view token, then publishes transcript finals at ``--rate-hz``, each
stamped with its ``published_at``. Every viewer notes when each final
arrives; the figures are over all (viewer, final) pairs. It exits 1 when a
frame is missing or p99 exceeds ``--p99-budget-ms``.

Needs the development dependencies (``httpx``, ``websockets``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import nats
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from livetranslate.contracts import encode, subjects, v1
from livetranslate.streams import logs
from livetranslate.streams.apply import apply_topology
from livetranslate.streams.server import EmbeddedServer, free_port

__all__ = ["LoadFigures", "main", "run"]

MAX_VIEWERS = 1000
MAX_FINALS = 10_000
MAX_DURATION_S = 600.0
CONNECT_BATCH = 50
"""Sockets opened at once: a burst of hundreds of handshakes is not what is measured."""

EDGE_START_S = 30.0


@dataclass
class LoadFigures:
    """What one run measured."""

    viewers: int
    finals: int
    received: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    connect_s: float = 0.0
    publish_s: float = 0.0
    edge_buckets: dict[float, float] = field(default_factory=dict)
    """The edge's own histogram: frames handed to sockets within each bound (s)."""

    @property
    def missing(self) -> int:
        return self.viewers * self.finals - self.received

    def percentile_ms(self, percent: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
        return ordered[index]

    def report(self) -> str:
        lines = [
            f"viewers {self.viewers}, finals {self.finals} "
            f"(published in {self.publish_s:.1f} s; viewers connected in {self.connect_s:.1f} s)",
            f"frames received {self.received} of {self.viewers * self.finals}, "
            f"missing {self.missing}",
        ]
        if self.latencies_ms:
            lines.append(
                "publish -> client latency ms: "
                f"p50 {self.percentile_ms(50):.1f}  p95 {self.percentile_ms(95):.1f}  "
                f"p99 {self.percentile_ms(99):.1f}  max {max(self.latencies_ms):.1f}  "
                f"mean {statistics.fmean(self.latencies_ms):.1f}"
            )
        if self.edge_buckets:
            lines.append(f"edge side (to the socket write): {self._edge_summary()}")
        return "\n".join(lines)

    def _edge_summary(self) -> str:
        total = self.edge_buckets.get(float("inf"), 0.0)
        parts = []
        for percent in (50, 95, 99):
            bound = next(
                (
                    b
                    for b, count in sorted(self.edge_buckets.items())
                    if count >= total * percent / 100
                ),
                float("inf"),
            )
            parts.append(f"p{percent} <= {bound * 1000:.0f} ms")
        return ", ".join(parts) + f" ({total:.0f} frames)"


@dataclass(frozen=True)
class LoadOptions:
    viewers: int = 200
    finals: int = 200
    rate_hz: float = 20.0
    duration_s: float = 120.0
    nats_url: str | None = None
    edge: str | None = None


async def run(options: LoadOptions) -> LoadFigures:
    """One bounded run; raises TimeoutError when it outlasts ``duration_s``."""
    async with asyncio.timeout(options.duration_s), _broker(options.nats_url) as nats_url:
        with _edge(options.edge, nats_url) as address:
            await _wait_until_ready(address)
            return await _measure(address, nats_url, options)


async def _measure(address: str, nats_url: str, options: LoadOptions) -> LoadFigures:
    figures = LoadFigures(options.viewers, options.finals)
    session_id, view_token = await _create_session(address)
    url = f"ws://{address}/ws/sessions/{session_id}?token={view_token}"
    started = time.monotonic()
    async with _viewers(url, options.viewers) as sockets:
        await _wait_for_viewers(address, options.viewers)
        # A full collection here would show as latency that no browser has.
        gc.collect()
        gc.freeze()
        figures.connect_s = time.monotonic() - started
        receiving = [asyncio.create_task(_receive(s, options.finals, figures)) for s in sockets]
        started = time.monotonic()
        await _publish_finals(nats_url, session_id, options.finals, options.rate_hz)
        figures.publish_s = time.monotonic() - started
        await asyncio.wait(receiving, timeout=max(5.0, options.finals / options.rate_hz))
        for task in receiving:
            task.cancel()
    figures.edge_buckets = await _edge_latency_buckets(address)
    return figures


async def _edge_latency_buckets(address: str) -> dict[float, float]:
    async with httpx.AsyncClient(trust_env=False) as http:
        text = (await http.get(f"http://{address}/metrics")).text
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "livetranslate_edge_publish_to_client_seconds_bucket"
    }


async def _create_session(address: str) -> tuple[str, str]:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"http://{address}/api/sessions", json={})
    response.raise_for_status()
    created = response.json()
    return created["session_id"], created["view_token"]


@contextlib.asynccontextmanager
async def _viewers(url: str, count: int) -> AsyncIterator[list[ClientConnection]]:
    async with contextlib.AsyncExitStack() as stack:
        sockets: list[ClientConnection] = []
        for first in range(0, count, CONNECT_BATCH):
            batch = range(first, min(first + CONNECT_BATCH, count))
            opening = [
                stack.enter_async_context(connect(url, proxy=None, compression=None)) for _ in batch
            ]
            sockets += await asyncio.gather(*opening)
        yield sockets


async def _wait_for_viewers(address: str, count: int) -> None:
    # The edge counts a viewer once its feed follows the session: from then
    # on a publish reaches it live, not as history.
    async with httpx.AsyncClient(trust_env=False) as http:
        while True:
            text = (await http.get(f"http://{address}/metrics")).text
            if f"livetranslate_edge_viewers {float(count)}" in text:
                return
            await asyncio.sleep(0.1)


async def _receive(socket: ClientConnection, finals: int, figures: LoadFigures) -> None:
    for _ in range(finals):
        frame = json.loads(await socket.recv())
        arrived_s = time.time()
        published = datetime.fromisoformat(frame["data"]["published_at"]).timestamp()
        figures.latencies_ms.append((arrived_s - published) * 1000)
        figures.received += 1


async def _publish_finals(nats_url: str, session_id: str, count: int, rate_hz: float) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    subject = subjects.transcript("final", session_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate_hz - loop.time()))
            final = v1.Transcript(
                session_id=session_id,
                utterance_id=f"u{n:05d}",
                kind="final",
                revision=0,
                text=f"final number {n} of the load test, about as long as a caption line",
                start_s=float(n),
                end_s=n + 1.0,
                published_at=v1.utc_now(),
            )
            body, headers = encode(final, f"{session_id}:load:{n}")
            await js.publish(subject, body, headers=headers)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _broker(nats_url: str | None) -> AsyncIterator[str]:
    if nats_url is not None:
        _require_loopback(nats_url, "--nats")
        yield nats_url
        return
    with tempfile.TemporaryDirectory(prefix="livetranslate-load-") as folder:
        async with EmbeddedServer(Path(folder)) as server:
            client = await nats.connect(server.url)
            await apply_topology(client)
            await client.close()
            yield server.url


@contextlib.contextmanager
def _edge(address: str | None, nats_url: str) -> Iterator[str]:
    """The edge's ``host:port``: the one given, or one in a child process."""
    if address is not None:
        _require_loopback(f"http://{address}", "--edge")
        yield address
        return
    port = free_port()
    # A child process: the viewers' own work must not share the edge's event loop.
    child = multiprocessing.get_context("spawn").Process(
        target=_serve_edge, args=(nats_url, port), daemon=True
    )
    child.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        child.terminate()
        child.join(10)


def _serve_edge(nats_url: str, port: int) -> None:
    from livetranslate.edge import create_app, serve
    from livetranslate.edge.settings import EdgeSettings

    logs.configure("WARNING")  # one line per socket would drown the figures
    app = create_app(nats_url, settings=EdgeSettings(open_sessions="false"))
    asyncio.run(serve(app, port=port, stop=asyncio.Event()))


async def _wait_until_ready(address: str) -> None:
    deadline = time.monotonic() + EDGE_START_S
    async with httpx.AsyncClient(trust_env=False) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"http://{address}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the edge at {address} was not ready within {EDGE_START_S} s")


def _require_loopback(url: str, option: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"{option} must be on this machine's loopback; got {url!r}")


def _options(argv: list[str] | None) -> tuple[LoadOptions, float]:
    parser = argparse.ArgumentParser(prog="python -m livetranslate.edge.loadtest")
    parser.add_argument("--viewers", type=int, default=200, help=f"sockets, 1-{MAX_VIEWERS}")
    parser.add_argument("--finals", type=int, default=200, help=f"finals, 1-{MAX_FINALS}")
    parser.add_argument("--rate-hz", type=float, default=20.0, help="finals per second")
    parser.add_argument("--duration-s", type=float, default=120.0, help="the whole run's limit")
    parser.add_argument("--nats", help="a broker on loopback; default: embed one")
    parser.add_argument("--edge", help="host:port of an edge on loopback; default: start one")
    parser.add_argument("--p99-budget-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    if not 1 <= args.viewers <= MAX_VIEWERS:
        parser.error(f"--viewers must be 1-{MAX_VIEWERS}; got {args.viewers}")
    if not 1 <= args.finals <= MAX_FINALS:
        parser.error(f"--finals must be 1-{MAX_FINALS}; got {args.finals}")
    if not 0 < args.rate_hz <= 1000:
        parser.error(f"--rate-hz must be in (0, 1000]; got {args.rate_hz}")
    if not 0 < args.duration_s <= MAX_DURATION_S:
        parser.error(f"--duration-s must be in (0, {MAX_DURATION_S:.0f}]; got {args.duration_s}")
    options = LoadOptions(
        args.viewers, args.finals, args.rate_hz, args.duration_s, args.nats, args.edge
    )
    return options, args.p99_budget_ms


def main(argv: list[str] | None = None) -> int:
    options, budget_ms = _options(argv)
    logs.configure("WARNING")
    figures = asyncio.run(run(options))
    print(figures.report())
    within = figures.missing == 0 and figures.percentile_ms(99) <= budget_ms
    print(f"{'PASS' if within else 'FAIL'}: p99 budget {budget_ms:.0f} ms, no frame missing")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
