"""Microphone frames: what the edge accepts, and where a session's audio resumes."""

from __future__ import annotations

import pytest

from livetranslate.contracts import v1
from livetranslate.edge.audio import (
    MAX_FRAME_BYTES,
    AudioPosition,
    FrameError,
    SessionEndedError,
    check_frame,
)


def test_a_frame_of_even_length_within_the_limit_is_taken() -> None:
    assert check_frame(b"\x00\x01" * 320) == b"\x00\x01" * 320
    assert len(check_frame(b"\x00" * MAX_FRAME_BYTES)) == MAX_FRAME_BYTES


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        (b"\x00" * 641, 1007, "even byte count"),
        (b"", 1007, "positive"),
        (b"\x00" * (MAX_FRAME_BYTES + 2), 1009, "at most 3200"),
        (None, 1003, "binary PCM"),
    ],
)
def test_a_bad_frame_is_refused_with_code_and_reason(
    frame: bytes | None, code: int, words: str
) -> None:
    with pytest.raises(FrameError) as refused:
        check_frame(frame)

    assert refused.value.code == code
    assert words in refused.value.reason


def test_audio_resumes_after_the_last_stored_chunk() -> None:
    last = v1.AudioChunkMeta(session_id="s1", seq=9, offset_samples=3200)

    assert AudioPosition.following(last, 640, "s1") == AudioPosition(10, 3520, started=True)


def test_audio_after_a_start_marker_begins_at_zero_without_a_second_start() -> None:
    start = v1.SessionEvent(session_id="s1", kind="start")

    assert AudioPosition.following(start, 0, "s1") == AudioPosition(0, 0, started=True)


def test_a_session_whose_audio_ended_takes_no_more() -> None:
    end = v1.SessionEvent(session_id="s1", kind="end", total_samples=16000)

    with pytest.raises(SessionEndedError, match="has ended"):
        AudioPosition.following(end, 0, "s1")
