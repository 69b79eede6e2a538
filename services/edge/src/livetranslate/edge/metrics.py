"""The edge's Prometheus figures, in a registry of its own.

One registry per app keeps two apps in one process (tests) from sharing,
or clashing over, the default registry.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE", "EdgeMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Finer below 100 ms, the figure a caption should arrive within."""


class EdgeMetrics:
    """Counters, gauges and the publish-to-client latency of one edge."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # labels() costs microseconds; with 200 viewers it runs 200 times a message.
        self._children: dict[str, tuple[Counter, Histogram]] = {}
        ProcessCollector(registry=self.registry)
        self.viewers = Gauge(
            "livetranslate_edge_viewers", "Viewer sockets open now.", registry=self.registry
        )
        self.publishers = Gauge(
            "livetranslate_edge_publishers",
            "Microphone sockets open now.",
            registry=self.registry,
        )
        self.frames_sent = Counter(
            "livetranslate_edge_frames_sent",
            "Event frames sent to viewers, by contract.",
            ["contract"],
            registry=self.registry,
        )
        self.partials_dropped = Counter(
            "livetranslate_edge_partials_dropped",
            "Partial revisions not sent to a viewer that fell behind.",
            registry=self.registry,
        )
        self.audio_frames = Counter(
            "livetranslate_edge_audio_frames",
            "Microphone frames received and published to audio.ingest.",
            registry=self.registry,
        )
        self.refused = Counter(
            "livetranslate_edge_sockets_refused",
            "Sockets closed before serving, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=self.registry,
        )
        self.sessions_created = Counter(
            "livetranslate_edge_sessions_created",
            "Sessions created with POST /api/sessions.",
            registry=self.registry,
        )
        self.publish_to_client = Histogram(
            "livetranslate_edge_publish_to_client_seconds",
            "From a stage publishing a transcript or translation to the edge handing it to a "
            "live viewer's socket (history replayed to a new viewer is not counted).",
            ["contract"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def count_sent(self, contract: str, live_latency_s: float | None) -> None:
        """One frame handed to a viewer's socket; a live one's latency with it."""
        children = self._children.get(contract)
        if children is None:
            children = (self.frames_sent.labels(contract), self.publish_to_client.labels(contract))
            self._children[contract] = children
        children[0].inc()
        if live_latency_s is not None:
            children[1].observe(live_latency_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
