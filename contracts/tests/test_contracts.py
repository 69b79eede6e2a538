"""Contracts: round trips through the wire format, and rejection of bad messages."""

from __future__ import annotations

import pytest

from livetranslate.contracts import ContractError, decode, decode_as, encode, encode_audio, v1
from livetranslate.contracts import headers as h

SAMPLES = [
    v1.SessionConfig(session_id="s1", source_language="en", target_languages=("pt", "es")),
    v1.SessionEvent(session_id="s1", kind="end", total_samples=16000),
    v1.VadEvent(
        session_id="s1", utterance_id="u00001", kind="speech_end", start_samples=0, end_samples=9
    ),
    v1.Transcript(
        session_id="s1",
        utterance_id="u00001",
        kind="final",
        revision=3,
        text="hello there",
        words=(v1.Word(text="hello", start_s=0.1, end_s=0.4, probability=0.9),),
        language="en",
        start_s=0.0,
        end_s=1.2,
    ),
    v1.Translation(
        session_id="s1",
        utterance_ids=("u00001",),
        source_language="en",
        target_language="pt",
        source_text="hello",
        text="olá",
        engine="bergamot",
    ),
    v1.SpeakerTurn(session_id="s1", utterance_id="u00001", speaker="S1", start_s=0, end_s=1),
    v1.AnalyticsSnapshot(
        session_id="s1", final=True, speech_s=1.0, utterances=1, words=2, words_per_minute=120
    ),
    v1.DeadLetter(stage="vad", subject="audio.ingest.s1", reason="bad", payload_bytes=0),
]


@pytest.mark.parametrize("contract", SAMPLES, ids=lambda c: c.CONTRACT_NAME)
def test_json_contract_survives_the_wire(contract: v1.Contract) -> None:
    body, headers = encode(contract, msg_id="m-1")
    assert headers[h.CONTRACT] == f"{contract.CONTRACT_NAME}/v1"
    assert headers[h.MSG_ID] == "m-1"
    assert decode(headers, body).contract == contract


def test_audio_travels_as_raw_bytes_with_metadata_in_a_header() -> None:
    meta = v1.AudioChunkMeta(session_id="s1", seq=4, offset_samples=6400)
    pcm = bytes(range(256)) * 10
    body, headers = encode_audio(meta, pcm)
    assert body == pcm
    decoded = decode(headers, body)
    assert decoded.contract == meta
    assert decoded.pcm == pcm


def test_missing_contract_header_is_an_error_naming_the_header() -> None:
    with pytest.raises(ContractError, match="missing Lt-Contract"):
        decode({}, b"{}")


def test_unknown_version_is_refused_before_parsing() -> None:
    with pytest.raises(ContractError, match="unsupported contract version v2"):
        decode({h.CONTRACT: "transcript/v2"}, b"not even json")


def test_unknown_contract_name_is_refused() -> None:
    with pytest.raises(ContractError, match="unknown contract 'sonnet'"):
        decode({h.CONTRACT: "sonnet/v1"}, b"{}")


def test_invalid_body_names_the_field() -> None:
    with pytest.raises(ContractError, match="revision"):
        decode({h.CONTRACT: "transcript/v1"}, b'{"session_id": "s", "revision": -1}')


def test_unknown_fields_are_refused() -> None:
    body, headers = encode(SAMPLES[0])
    tampered = body.replace(b"{", b'{"surprise": 1,', 1)
    with pytest.raises(ContractError, match="surprise"):
        decode(headers, tampered)


def test_session_id_with_subject_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="session id"):
        v1.SessionEvent(session_id="a.b", kind="start")


def test_decode_as_insists_on_the_contract() -> None:
    body, headers = encode(SAMPLES[1])
    with pytest.raises(ContractError, match="expected transcript, got session_event"):
        decode_as(v1.Transcript, headers, body)
