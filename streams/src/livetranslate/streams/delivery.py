"""How a stage consumes: durable pull consumers, explicit acks, dead letters.

FastStream's default for JetStream terminates a message whose handler
raised, so it is never redelivered. Stages here take acknowledgement into
their own hands instead:

- a message that is not a valid contract is dead-lettered with the reason
  and acked at once: retrying cannot fix it;
- a handler that raises ``Rejected`` does the same (bad content inside a
  valid contract, such as a wrong sample rate);
- any other exception is a transient failure: the message is nacked with a
  growing delay, and once it has been delivered ``max_deliver`` times it is
  dead-lettered, so the session goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Final

import structlog
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.message import NatsMessage
from livetranslate.contracts import ContractError, decode
from livetranslate.contracts import headers as h
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams.publishing import Publisher
from livetranslate.streams.topology import CONSUMERS
from nats.aio.msg import Msg

__all__ = ["Handler", "Rejected", "consume", "retry_delay_s", "retry_or_give_up"]

log = structlog.get_logger(__name__)

Message = Annotated[NatsMessage, Context("message")]

Handler = Callable[[Decoded, str], Awaitable[None]]
"""A stage's handler: the decoded message and the subject it came on."""

BASE_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 10.0


class Rejected(Exception):  # noqa: N818 - it names the outcome, as NATS does
    """The message is well-formed but its content cannot be processed."""


def retry_delay_s(deliveries: int) -> float:
    """Back-off before the next delivery: 0.5 s, 1 s, 2 s, … capped at 10 s."""
    delay: float = min(BASE_DELAY_S * 2 ** max(deliveries - 1, 0), MAX_DELAY_S)
    return delay


def consume(
    router: NatsRouter,
    consumer: str,
    stage: str,
    publisher: Callable[[], Publisher],
    handler: Handler,
    *,
    batch_size: int = 1,
) -> None:
    """Bind ``handler`` to the durable consumer named ``consumer`` in the topology.

    ``publisher`` is called per message, so the stage can create its publisher
    once the broker is connected.
    """
    spec = CONSUMERS[consumer]

    async def on_message(message: Message) -> None:
        await _deliver(message.raw_message, spec.max_deliver, stage, publisher(), handler)

    router.subscriber(
        spec.filter_subjects[0],
        # declare=False: the topology belongs to `streams apply`; a stage
        # never rewrites a stream's configuration at start-up.
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        # A long fetch makes nats-py's early-timeout path (which FastStream
        # does not suppress, only logs and restarts) rare.
        # FastStream hands each message of a fetched batch to its own task, and
        # those can overtake each other; stages that keep per-session state must
        # see the stream's order, so each fetch takes one message unless the
        # stage says its handler does not care.
        pull_sub=PullSub(batch_size=batch_size, timeout=5.0),
        ack_policy=AckPolicy.MANUAL,
    )(on_message)


async def _deliver(
    raw: Msg,
    max_deliver: int,
    stage: str,
    publisher: Publisher,
    handler: Handler,
) -> None:
    headers = raw.headers or {}
    structlog.contextvars.bind_contextvars(subject=raw.subject, session_id=headers.get(h.SESSION))
    try:
        decoded = decode(headers, raw.data)
        await handler(decoded, raw.subject)
    except (ContractError, Rejected) as exc:
        await publisher.dead_letter(stage, raw.subject, headers, raw.data, str(exc))
        await raw.ack()
    except Exception as exc:
        await retry_or_give_up(raw, max_deliver, stage, publisher, exc)
    else:
        await raw.ack()
    finally:
        structlog.contextvars.unbind_contextvars("subject", "session_id")


async def retry_or_give_up(
    raw: Msg, max_deliver: int, stage: str, publisher: Publisher, exc: Exception
) -> None:
    """Nack ``raw`` with back-off, or dead-letter it once it was delivered ``max_deliver`` times."""
    deliveries = raw.metadata.num_delivered or 1
    if deliveries < max_deliver:
        delay_s = retry_delay_s(deliveries)
        log.warning("message.retry", error=repr(exc), deliveries=deliveries, delay_s=delay_s)
        await raw.nak(delay=delay_s)
        return
    reason = f"failed {deliveries} times; last error: {exc!r}"
    await publisher.dead_letter(stage, raw.subject, raw.headers, raw.data, reason, deliveries)
    await raw.ack()
