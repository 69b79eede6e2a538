"""``transcribe --nats URL`` on a broker where some stages already run elsewhere.

A stage started twice on one broker shares its durable consumer with the
other copy, and each copy sees only part of a session: the transcribe
command uses the stages that are running there (they answer NATS service
discovery) and starts only the rest.
"""

from __future__ import annotations

import asyncio
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
from livetranslate.streams.server import free_port

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
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"`run {name.value}` exited {process.returncode}"
        if name in asyncio.run(stages_served(url, [name])):
            return
        time.sleep(0.2)
    pytest.fail(f"`run {name.value}` did not start pulling within {START_TIMEOUT_S} s")


@pytest.mark.model
def test_transcribes_at_once_all_use_the_running_pipeline_however_busy(
    nats_url: str, tmp_path: Path
) -> None:
    asyncio.run(apply_to(nats_url))
    running = subprocess.Popen(
        [str(CLI), "up", "--nats", nats_url, "--port", str(free_port())],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "up.txt").open("wb"),
    )
    files = list(recordings().items())[:3]
    try:
        for name in PIPELINE:
            _wait_until_served(nats_url, name, running)
        # At once, so that the running stages are busy with one session while
        # the next command asks whether they run.
        commands = [
            subprocess.Popen(
                [str(CLI), "transcribe", str(recording), "--nats", nats_url, "--format", "json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for recording, _ in files
        ]
        done = [command.communicate(timeout=TRANSCRIBE_TIMEOUT_S) for command in commands]
    finally:
        running.send_signal(signal.SIGINT)
        running.wait(30)

    texts = []
    for command, (stdout, stderr) in zip(commands, done, strict=True):
        assert command.returncode == 0, stderr
        every = ", ".join(name.value for name in PIPELINE)
        assert f"using the stages already running at {nats_url}: {every}" in stderr
        texts.append(" ".join(u["text"] for u in json.loads(stdout)["utterances"]))
    # tiny.en gets a word or two of the three wrong on its own; split sessions
    # lose half their words or more.
    assert wer([reference for _, reference in files], texts) < 0.2, texts
