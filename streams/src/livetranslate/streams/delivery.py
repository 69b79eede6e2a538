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

A message is acked when its handler returns, unless the stage consumes with
``keeping=True`` and its handler ``keep``s the message: a stage whose work
outlives the handler (the transcribe stage collects an utterance's pieces and
publishes its final later) acks it through the ``Kept`` handle once that work
is done. While a message is kept its ack wait is renewed (``+WPI``), so the
broker hands it to no other consumer; if the stage stops or loses its
connection first, the broker redelivers it once the ack wait runs out and the
next instance does the work again.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Final, Literal, cast, overload

import structlog
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.message import NatsMessage
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, MsgAlreadyAckdError
from nats.errors import Error as NatsError

from livetranslate.contracts import ContractError, decode
from livetranslate.contracts import headers as h
from livetranslate.contracts.envelope import Decoded
from livetranslate.streams.publishing import Publisher
from livetranslate.streams.topology import CONSUMERS

__all__ = [
    "Delivery",
    "Handler",
    "KeepingHandler",
    "Kept",
    "Rejected",
    "consume",
    "retry_delay_s",
    "retry_or_give_up",
]

log = structlog.get_logger(__name__)

Message = Annotated[NatsMessage, Context("message")]

BASE_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 10.0
RENEWALS_PER_ACK_WAIT: Final = 3
"""How often a kept message's ack wait is renewed within it: a renewal may then
come two thirds of the ack wait late (a busy event loop) before the broker
redelivers the message."""


class Rejected(Exception):  # noqa: N818 - it names the outcome, as NATS does
    """The message is well-formed but its content cannot be processed."""


def retry_delay_s(deliveries: int) -> float:
    """Back-off before the next delivery: 0.5 s, 1 s, 2 s, … capped at 10 s."""
    delay: float = min(BASE_DELAY_S * 2 ** max(deliveries - 1, 0), MAX_DELAY_S)
    return delay


class Kept:
    """A message left un-acked after its handler returned, until its work is done.

    Exactly one of ``ack``, ``retry`` or ``release`` settles it; the others
    then do nothing.
    """

    def __init__(self, raw: Msg, binding: _Binding) -> None:
        self._raw = raw
        self._binding = binding
        self._settled = False

    async def ack(self) -> None:
        """The work is done.

        A failed ack is logged, not raised: the broker then redelivers the
        message, as after a lost ack, and the handler finds its work done.
        """
        if not self._settle():
            return
        try:
            await self._raw.ack()
        except NatsError as exc:
            log.warning("message.unacked", subject=self._raw.subject, error=repr(exc))

    async def retry(self, exc: Exception) -> None:
        """The work failed: nack with back-off, or dead-letter after ``max_deliver`` deliveries.

        A failure to do either is logged, not raised: the broker then
        redelivers the message once the ack wait runs out.
        """
        if not self._settle():
            return
        binding = self._binding
        try:
            await retry_or_give_up(
                self._raw, binding.max_deliver, binding.stage, binding.publisher(), exc
            )
        except NatsError as error:
            log.warning("message.not_retried", subject=self._raw.subject, error=repr(error))

    def release(self) -> None:
        """Stop renewing the ack wait: the broker redelivers the message once it runs out."""
        self._settle()

    async def renew(self) -> None:
        """Restart the broker's ack wait for the message (an in-progress ack)."""
        await self._raw.in_progress()

    def _settle(self) -> bool:
        """Take the message out of keeping; False when it was already."""
        if self._settled:
            return False
        self._settled = True
        self._binding.keeper.discard(self)
        return True


class Delivery:
    """One message in its handler's hands: acked when the handler returns, unless kept."""

    def __init__(self, raw: Msg, binding: _Binding) -> None:
        self._raw = raw
        self._binding = binding
        self.kept: Kept | None = None

    def keep(self) -> Kept:
        """Leave the message un-acked past the handler's return, its ack wait renewed.

        The handler raising still settles the message as usual (dead letter or
        retry), and the handle returned here then does nothing.
        """
        if self.kept is None:
            self.kept = Kept(self._raw, self._binding)
            self._binding.keeper.add(self.kept)
        return self.kept


Handler = Callable[[Decoded, str], Awaitable[None]]
"""A stage's handler: the decoded message and the subject it came on."""

KeepingHandler = Callable[[Decoded, str, Delivery], Awaitable[None]]
"""A handler that may keep its message: the decoded message, its subject, its delivery."""


class _Keeper:
    """The messages one consumer keeps, and the task that renews their ack wait."""

    def __init__(self, renew_every_s: float) -> None:
        self._renew_every_s = renew_every_s
        self._kept: set[Kept] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, kept: Kept) -> None:
        self._kept.add(kept)
        if self._task is None or self._task.done():
            # A context of its own: the task outlives the handler that starts it
            # and must not log under that message's subject and session.
            self._task = asyncio.create_task(
                self._renew_while_kept(), name="renew-kept", context=contextvars.Context()
            )

    def discard(self, kept: Kept) -> None:
        self._kept.discard(kept)

    async def _renew_while_kept(self) -> None:
        while self._kept:
            await asyncio.sleep(self._renew_every_s)
            for kept in list(self._kept):
                if kept in self._kept:  # not settled or dropped while others renewed
                    await self._renew(kept)

    async def _renew(self, kept: Kept) -> None:
        try:
            await kept.renew()
        except ConnectionClosedError:
            # For good: the broker redelivers what was kept once the ack wait runs out.
            log.warning("kept.dropped", messages=len(self._kept), reason="connection closed")
            self._kept.clear()
        except MsgAlreadyAckdError:
            self._kept.discard(kept)
        except NatsError as exc:
            log.warning("kept.not_renewed", error=repr(exc))


@dataclass(frozen=True)
class _Binding:
    """What the messages of one ``consume`` call share."""

    stage: str
    max_deliver: int
    publisher: Callable[[], Publisher]
    keeper: _Keeper


@overload
def consume(
    router: NatsRouter,
    consumer: str,
    stage: str,
    publisher: Callable[[], Publisher],
    handler: Handler,
    *,
    batch_size: int = 1,
    keeping: Literal[False] = False,
) -> None: ...


@overload
def consume(
    router: NatsRouter,
    consumer: str,
    stage: str,
    publisher: Callable[[], Publisher],
    handler: KeepingHandler,
    *,
    batch_size: int = 1,
    keeping: Literal[True],
) -> None: ...


def consume(
    router: NatsRouter,
    consumer: str,
    stage: str,
    publisher: Callable[[], Publisher],
    handler: Handler | KeepingHandler,
    *,
    batch_size: int = 1,
    keeping: bool = False,
) -> None:
    """Bind ``handler`` to the durable consumer named ``consumer`` in the topology.

    ``publisher`` is called per message, so the stage can create its publisher
    once the broker is connected. With ``keeping`` the handler also gets each
    message's ``Delivery``, to keep it un-acked past its return.
    """
    spec = CONSUMERS[consumer]
    keeper = _Keeper(spec.ack_wait_s / RENEWALS_PER_ACK_WAIT)
    binding = _Binding(stage, spec.max_deliver, publisher, keeper)
    with_delivery = (
        cast(KeepingHandler, handler) if keeping else _without_delivery(cast(Handler, handler))
    )

    async def on_message(message: Message) -> None:
        await _deliver(message.raw_message, binding, with_delivery)

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


def _without_delivery(handler: Handler) -> KeepingHandler:
    async def handle(decoded: Decoded, subject: str, delivery: Delivery) -> None:
        await handler(decoded, subject)

    return handle


async def _deliver(raw: Msg, binding: _Binding, handler: KeepingHandler) -> None:
    headers = raw.headers or {}
    structlog.contextvars.bind_contextvars(subject=raw.subject, session_id=headers.get(h.SESSION))
    delivery = Delivery(raw, binding)
    try:
        decoded = decode(headers, raw.data)
        await handler(decoded, raw.subject, delivery)
    except (ContractError, Rejected) as exc:
        _take_back(delivery)
        reason = str(exc)
        await binding.publisher().dead_letter(binding.stage, raw.subject, headers, raw.data, reason)
        await raw.ack()
    except Exception as exc:
        _take_back(delivery)
        await retry_or_give_up(raw, binding.max_deliver, binding.stage, binding.publisher(), exc)
    else:
        if delivery.kept is None:
            await raw.ack()
    finally:
        structlog.contextvars.unbind_contextvars("subject", "session_id")


def _take_back(delivery: Delivery) -> None:
    """The handler raised: the message is settled here, whatever the handler kept."""
    if delivery.kept is not None:
        delivery.kept.release()


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
