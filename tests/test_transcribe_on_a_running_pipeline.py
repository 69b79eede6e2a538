"""``transcribe --nats URL`` on a broker where some stages already run elsewhere.

A stage started twice on one broker shares its durable consumer with the
other copy, and each copy sees only part of a session: the transcribe
command uses the stages that are running there and starts only the rest.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from librivox import recordings, wer

from livetranslate.cli.pipeline import apply_to, stages, stages_served
from livetranslate.cli.stages import PIPELINE, StageName

pytestmark = [pytest.mark.broker]

CLI = Path(sys.executable).with_name("livetranslate")
START_TIMEOUT_S = 60.0
TRANSCRIBE_TIMEOUT_S = 180.0


async def test_a_stage_counts_as_served_only_while_something_runs_it(nats_url: str) -> None:
    await apply_to(nats_url)
    assert await stages_served(nats_url, PIPELINE) == set()

    async with stages(nats_url, [StageName.vad]):
        assert await stages_served(nats_url, PIPELINE) == {StageName.vad}


def _wait_until_served(url: str, name: StageName, process: subprocess.Popen[bytes]) -> None:
    import asyncio

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"`run {name.value}` exited {process.returncode}"
        if name in asyncio.run(stages_served(url, [name])):
            return
        time.sleep(0.2)
    pytest.fail(f"`run {name.value}` did not start pulling within {START_TIMEOUT_S} s")


@pytest.mark.model
def test_transcribe_uses_a_running_vad_instead_of_splitting_the_audio_with_it(
    nats_url: str, tmp_path: Path
) -> None:
    import asyncio

    asyncio.run(apply_to(nats_url))
    running = subprocess.Popen(
        [str(CLI), "run", "vad", "--nats", nats_url],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "vad.txt").open("wb"),
    )
    try:
        _wait_until_served(nats_url, StageName.vad, running)
        recording, reference = next(iter(recordings().items()))

        done = subprocess.run(
            [str(CLI), "transcribe", str(recording), "--nats", nats_url, "--format", "json"],
            capture_output=True,
            text=True,
            timeout=TRANSCRIBE_TIMEOUT_S,
        )
    finally:
        running.send_signal(signal.SIGINT)
        running.wait(30)

    assert done.returncode == 0, done.stderr
    assert f"using the stages already running at {nats_url}: vad" in done.stderr
    text = " ".join(u["text"] for u in json.loads(done.stdout)["utterances"])
    assert wer([reference], [text]) < 0.25, text
