"""Create or update the topology on a broker, idempotently."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError

from livetranslate.streams.topology import (
    ACCESS_BUCKET,
    CONSUMERS,
    SESSIONS_BUCKET,
    STREAMS,
    ConsumerSpec,
    StreamSpec,
)

__all__ = ["apply_topology", "consumer_config", "stream_config"]


def stream_config(spec: StreamSpec) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=float(spec.max_age_s),
        max_msg_size=spec.max_msg_size,
        duplicate_window=float(spec.duplicate_window_s),
        num_replicas=spec.replicas,
        allow_direct=True,
    )


def consumer_config(spec: ConsumerSpec) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=spec.durable,
        filter_subjects=list(spec.filter_subjects),
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        max_deliver=spec.max_deliver,
        ack_wait=spec.ack_wait_s,
        max_ack_pending=spec.max_ack_pending,
        backoff=list(spec.backoff_s) or None,
    )


async def apply_topology(nc: Client) -> list[str]:
    """Make the broker's streams, consumers and bucket match the code.

    Returns one line per object saying whether it was created or updated.
    """
    js = nc.jetstream()
    report = [await _apply_stream(js, spec) for spec in STREAMS]
    report += [await _apply_consumer(js, spec) for spec in CONSUMERS.values()]
    report.append(await _apply_bucket(js, SESSIONS_BUCKET))
    report.append(await _apply_bucket(js, ACCESS_BUCKET))
    return report


async def _apply_stream(js: JetStreamContext, spec: StreamSpec) -> str:
    config = stream_config(spec)
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(config)
        return f"stream {spec.name}: created"
    await js.update_stream(config)
    return f"stream {spec.name}: updated"


async def _apply_consumer(js: JetStreamContext, spec: ConsumerSpec) -> str:
    # A durable create with an unchanged config is a no-op on the server, and
    # with a changed config it updates the consumer in place (nats-server 2.10+).
    await js.add_consumer(spec.stream, consumer_config(spec))
    return f"consumer {spec.stream}/{spec.durable}: applied"


async def _apply_bucket(js: JetStreamContext, bucket: str) -> str:
    try:
        await js.key_value(bucket)
        return f"bucket {bucket}: present"
    except BucketNotFoundError:
        await js.create_key_value(api.KeyValueConfig(bucket=bucket, history=5, ttl=7 * 24 * 3600.0))
        return f"bucket {bucket}: created"
