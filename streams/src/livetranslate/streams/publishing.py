"""Publishing contracts to JetStream, with de-duplication ids and dead letters."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import structlog
from faststream.nats import NatsBroker

from livetranslate.contracts import encode, encode_audio, subjects, v1
from livetranslate.contracts import headers as h
from livetranslate.streams.topology import stream_for

__all__ = ["Publisher"]

log = structlog.get_logger(__name__)


class Publisher:
    """Publishes contracts through a connected broker and waits for the stream's ack.

    Every publish carries ``Nats-Msg-Id`` when the caller gives one, so a
    retried publish is dropped by the stream's duplicate window.
    """

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def publish(self, contract: v1.Contract, subject: str, msg_id: str | None = None) -> None:
        body, headers = encode(contract, msg_id)
        await self._broker.publish(body, subject, headers=headers, stream=stream_for(subject))

    async def publish_audio(
        self, meta: v1.Contract, pcm: bytes, subject: str, msg_id: str | None = None
    ) -> None:
        body, headers = encode_audio(meta, pcm, msg_id)
        await self._broker.publish(body, subject, headers=headers, stream=stream_for(subject))

    async def dead_letter(
        self,
        stage: str,
        subject: str,
        headers: Mapping[str, str] | None,
        payload: bytes,
        reason: str,
        deliveries: int = 1,
    ) -> None:
        """Park a message the stage cannot process, with the reason, and go on."""
        headers = dict(headers or {})
        record = v1.DeadLetter(
            stage=stage,
            subject=subject,
            reason=reason,
            headers=headers,
            payload_bytes=len(payload),
            payload_b64=base64.b64encode(payload).decode(),
            deliveries=deliveries,
        )
        session_id = headers.get(h.SESSION) or _session_of(subject)
        target = subjects.dead_letter(stage, session_id)
        log.warning("message.dead_lettered", stage=stage, subject=subject, reason=reason)
        await self.publish(record, target)


def _session_of(subject: str) -> str | None:
    try:
        return subjects.parse(subject).session_id
    except subjects.InvalidSubjectError:
        return None
