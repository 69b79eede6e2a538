"""One browser's view of one session: an ordered consumer on the RESULTS stream.

An ordered consumer delivers a session's stored results and then its live
ones from the same cursor, so the browser sees history and live without a
gap or a duplicate, in stream order. ``after`` resumes past a stream
sequence the browser already has.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import structlog
from livetranslate.contracts import ContractError, decode, headers, subjects, v1
from livetranslate.edge.backlog import Backlog, Frame
from livetranslate.streams.topology import RESULTS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

__all__ = ["SessionFeed", "consumer_config", "frame_for", "session_subjects"]

log = structlog.get_logger(__name__)

HEARTBEAT_S = 2.0
"""The server's idle heartbeat; two missed ones make nats-py recreate the consumer.

A broker restart loses the ordered consumer (it lives in memory); with the
nats-py default of 5 s a viewer waited about 20 s for results to resume.
"""


def session_subjects(session_id: str) -> list[str]:
    """Every RESULTS subject of one session, and no other session's."""
    return [
        f"transcript.*.{session_id}",
        f"translation.*.{session_id}",
        subjects.speaker(session_id),
        subjects.analytics(session_id),
    ]


def consumer_config(session_id: str, after: int) -> api.ConsumerConfig:
    """Start at the beginning of the stream, or just past ``after``."""
    config = api.ConsumerConfig(filter_subjects=session_subjects(session_id))
    if after > 0:
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = after + 1
    else:
        config.deliver_policy = api.DeliverPolicy.ALL
    return config


def frame_for(subject: str, seq: int, msg_headers: Mapping[str, str] | None, body: bytes) -> Frame:
    """The browser's frame for one stored message; ContractError when it is not a contract."""
    contract = decode(msg_headers, body).contract
    _, version = headers.split_contract_tag((msg_headers or {})[headers.CONTRACT])
    text = json.dumps(
        {
            "contract": contract.CONTRACT_NAME,
            "version": version,
            "subject": subject,
            "seq": seq,
            "data": contract.model_dump(mode="json"),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Frame(seq=seq, text=text, droppable=_is_partial(contract))


def _is_partial(contract: v1.Contract) -> bool:
    return isinstance(contract, v1.Transcript | v1.Translation) and contract.kind == "partial"


class SessionFeed:
    """Feeds one session's results into one browser's backlog until stopped."""

    def __init__(self, js: JetStreamContext, session_id: str, after: int, backlog: Backlog) -> None:
        self.session_id = session_id
        self.backlog = backlog
        self.last_seq = after
        """Stream sequence of the last message taken; nothing at or before it is passed on."""

        self._js = js
        self._log = log.bind(session_id=session_id)
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def start(self) -> None:
        self._subscription = await self._js.subscribe(
            # nats-py wants one subject, but ignores it when the config names
            # filter_subjects: the consumer follows all four.
            session_subjects(self.session_id)[0],
            stream=RESULTS.name,
            config=consumer_config(self.session_id, self.last_seq),
            ordered_consumer=True,
            idle_heartbeat=HEARTBEAT_S,
            cb=self._on_message,
        )

    async def stop(self) -> None:
        # The server deletes the ephemeral consumer about 5 s after its
        # delivery subject loses interest; nothing else to tidy here.
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        # nats-py restarts an ordered consumer at (last sequence it saw + 1), and
        # counts from 0 rather than from ``after``: a restart before the first
        # message would replay the session from the start. Skipping what the
        # browser already has keeps that from becoming duplicates.
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        try:
            frame = frame_for(msg.subject, seq, msg.headers, msg.data)
        except ContractError as exc:
            self._log.warning("edge.message_skipped", subject=msg.subject, seq=seq, reason=str(exc))
            return
        await self.backlog.put(frame)
