"""The two-person reference call through the whole pipeline: speakers on the right lines,
each line with its own translation."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from nats.aio.client import Client

from livetranslate.cli.commands import SessionRequest, _publish_session
from livetranslate.cli.pipeline import stages
from livetranslate.cli.session import SessionWatch
from livetranslate.cli.stages import PIPELINE
from livetranslate.diarize.scoring import Turn, diarization_error_rate, read_rttm
from livetranslate.ingest.decode import decode_file

pytestmark = [pytest.mark.broker, pytest.mark.model]

CALL = Path(__file__).parent / "data" / "pyannote"


async def test_caption_lines_of_the_reference_call_name_the_right_speaker_and_translate_alone(
    nats_url: str, nats_client: Client
) -> None:
    session_id = f"call-{uuid.uuid4().hex[:8]}"
    config = SessionRequest(session_id, ("pt",), "en", 100).config()
    watch = SessionWatch(nats_client, session_id, ("pt",), speakers=True)
    async with stages(nats_url, PIPELINE):
        await watch.start()
        await _publish_session(nats_url, config, decode_file(CALL / "sample.wav"), 100, False)
        await watch.wait(120)
        await watch.stop()

    lines = [part for caption in watch.ordered() for part in caption.by_speaker()]
    spoken = [Turn(str(line.speaker), line.start_s, line.end_s) for line in lines]
    score = diarization_error_rate(read_rttm(CALL / "sample.rttm"), spoken)
    print(f"{len(lines)} lines; confusion {score.confusion_s:.2f} of {score.reference_s:.2f} s")

    assert {line.speaker for line in lines} == {"S1", "S2"}
    assert len(lines) >= 6, "the call alternates speakers; lines must follow"
    assert score.confusion_s / score.reference_s <= 0.15
    # Utterances span both speakers; each speaker's part is translated on its own, so
    # nearly every line has Portuguese (a line ending mid-sentence may join the next).
    translated = [line for line in lines if line.translations.get("pt")]
    assert len(translated) >= len(lines) - 2, [(line.text, line.translations) for line in lines]
