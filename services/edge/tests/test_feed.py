"""What a session's feed asks the broker for, and the frames it makes."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from nats.js import api

from livetranslate.contracts import ContractError, encode, v1
from livetranslate.edge.feed import consumer_config, frame_for, session_subjects


def transcript(kind: Literal["partial", "final"]) -> v1.Transcript:
    return v1.Transcript(
        session_id="s1",
        utterance_id="u1",
        kind=kind,
        revision=0,
        text="hello",
        start_s=0.0,
        end_s=1.0,
    )


def test_session_subjects_end_with_the_session_id() -> None:
    assert session_subjects("s1") == [
        "transcript.*.s1",
        "translation.*.s1",
        "speaker.s1",
        "analytics.s1",
    ]


def test_a_new_viewer_starts_at_the_beginning_of_the_stream() -> None:
    config = consumer_config("s1", after=0)

    assert config.deliver_policy == api.DeliverPolicy.ALL
    assert config.filter_subjects == session_subjects("s1")


def test_a_returning_viewer_starts_just_past_what_it_has() -> None:
    config = consumer_config("s1", after=41)

    assert config.deliver_policy == api.DeliverPolicy.BY_START_SEQUENCE
    assert config.opt_start_seq == 42


def test_a_frame_carries_contract_version_subject_seq_and_data() -> None:
    body, headers = encode(transcript("final"))

    frame = frame_for("transcript.final.s1", 7, headers, body)

    document = json.loads(frame.text)
    assert {k: document[k] for k in ("contract", "version", "subject", "seq")} == {
        "contract": "transcript",
        "version": 1,
        "subject": "transcript.final.s1",
        "seq": 7,
    }
    assert document["data"]["text"] == "hello"
    assert frame.seq == 7
    assert not frame.droppable


def test_a_partial_frame_may_be_dropped() -> None:
    body, headers = encode(transcript("partial"))

    assert frame_for("transcript.partial.s1", 1, headers, body).droppable


def test_a_message_without_contract_header_is_refused() -> None:
    with pytest.raises(ContractError):
        frame_for("transcript.final.s1", 1, None, b"{}")
