"""Turning contracts into NATS messages and back.

JSON contracts travel as the message body. Audio contracts travel as raw
PCM in the body with their metadata as compact JSON in the ``Lt-Meta``
header, so audio is never base64 inside JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

from pydantic import ValidationError

from livetranslate.contracts import headers as h
from livetranslate.contracts import v1

__all__ = [
    "AUDIO_CONTRACTS",
    "META",
    "ContractError",
    "Decoded",
    "decode",
    "decode_as",
    "encode",
    "encode_audio",
]

META: Final = "Lt-Meta"
AUDIO_CONTRACTS: Final = frozenset({"audio_chunk", "speech_audio"})
SUPPORTED_VERSIONS: Final = frozenset({v1.VERSION})

C = TypeVar("C", bound=v1.Contract)


class ContractError(ValueError):
    """A message is not a valid contract; the text says what was expected and found."""


class Decoded:
    """A decoded message: its contract and, for audio, the PCM bytes."""

    __slots__ = ("contract", "pcm")

    def __init__(self, contract: v1.Contract, pcm: bytes = b"") -> None:
        self.contract = contract
        self.pcm = pcm


def encode(contract: v1.Contract, msg_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a JSON contract."""
    return contract.model_dump_json().encode(), _headers(contract, msg_id)


def encode_audio(
    meta: v1.Contract, pcm: bytes, msg_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body (the PCM) and headers (with the metadata) of an audio contract."""
    if meta.CONTRACT_NAME not in AUDIO_CONTRACTS:
        raise ContractError(f"{meta.CONTRACT_NAME} is not an audio contract")
    headers = _headers(meta, msg_id)
    headers[META] = meta.model_dump_json()
    return pcm, headers


def decode(headers: Mapping[str, str] | None, body: bytes) -> Decoded:
    """Read the contract header, then parse the body (or ``Lt-Meta`` for audio)."""
    model = _model_for(headers or {})
    try:
        if model.CONTRACT_NAME in AUDIO_CONTRACTS:
            meta = (headers or {}).get(META)
            if meta is None:
                raise ContractError(f"{model.CONTRACT_NAME} needs an {META} header; none came")
            return Decoded(model.model_validate_json(meta), body)
        return Decoded(model.model_validate_json(body))
    except ValidationError as exc:
        raise ContractError(f"invalid {model.CONTRACT_NAME}: {_summary(exc)}") from exc


def decode_as(model: type[C], headers: Mapping[str, str] | None, body: bytes) -> C:
    """Decode and insist on one contract."""
    contract = decode(headers, body).contract
    if not isinstance(contract, model):
        raise ContractError(f"expected {model.CONTRACT_NAME}, got {contract.CONTRACT_NAME}")
    return contract


def _headers(contract: v1.Contract, msg_id: str | None) -> dict[str, str]:
    headers = {h.CONTRACT: h.contract_tag(contract.CONTRACT_NAME, v1.VERSION)}
    session_id = getattr(contract, "session_id", None)
    if session_id:
        headers[h.SESSION] = session_id
    if msg_id:
        headers[h.MSG_ID] = msg_id
    return headers


def _model_for(headers: Mapping[str, str]) -> type[v1.Contract]:
    tag = headers.get(h.CONTRACT)
    if tag is None:
        raise ContractError(f"missing {h.CONTRACT} header; expected e.g. 'transcript/v1'")
    try:
        name, version = h.split_contract_tag(tag)
    except ValueError as exc:
        raise ContractError(str(exc)) from exc
    if version not in SUPPORTED_VERSIONS:
        raise ContractError(
            f"unsupported contract version v{version} of {name}; "
            f"this build reads v{', v'.join(map(str, sorted(SUPPORTED_VERSIONS)))}"
        )
    model = v1.CONTRACTS.get(name)
    if model is None:
        raise ContractError(f"unknown contract {name!r}; known: {', '.join(v1.CONTRACTS)}")
    return model


def _summary(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3]]
    return "; ".join(parts)
