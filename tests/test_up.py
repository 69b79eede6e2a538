"""``livetranslate up`` as a user starts it: a real process, its broker and its edge."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from livetranslate.streams.server import free_port

pytestmark = [pytest.mark.broker, pytest.mark.model]

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
CLI = Path(sys.executable).with_name("livetranslate")


@contextlib.contextmanager
def _up(
    tmp_path: Path, port: int, **environ: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``livetranslate up`` on ``port``, and the file its stderr goes to.

    A file, not a pipe: a pipe nobody reads fills up and stalls the process.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    stderr = tmp_path / "stderr.txt"
    process = subprocess.Popen(
        [
            str(CLI),
            "up",
            "--port",
            str(port),
            "--broker-port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "nats"),
        ],
        stderr=stderr.open("wb"),
        stdout=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **environ},
    )
    try:
        yield process, stderr
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _line_with(process: subprocess.Popen[bytes], stderr: Path, text: str) -> str:
    """The first stderr line holding ``text``; fails if the process ends first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        exited = process.poll() is not None
        for line in stderr.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if exited:
            pytest.fail(f"exited {process.returncode} without printing {text!r}")
        time.sleep(0.1)
    pytest.fail(f"no {text!r} within {START_TIMEOUT_S} s:\n{stderr.read_text()}")


@pytest.mark.timeout(240)
def test_up_announces_its_page_only_once_the_page_answers(tmp_path: Path) -> None:
    port = free_port()
    with _up(tmp_path, port) as (process, stderr):
        line = _line_with(process, stderr, "is up")

        # Straight after the announcement, with no retry: the edge already listens.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
        assert f"http://127.0.0.1:{port}/" in line

        process.send_signal(signal.SIGINT)
        assert process.wait(STOP_TIMEOUT_S) == 130


@pytest.mark.timeout(240)
def test_up_on_a_taken_port_says_so_and_exits(tmp_path: Path) -> None:
    with _up(tmp_path / "first", port := free_port()) as (first, first_stderr):
        _line_with(first, first_stderr, "is up")
        with _up(tmp_path / "second", port) as (second, stderr):
            assert second.wait(START_TIMEOUT_S) == 2
            said = stderr.read_text()
            assert f"error: edge could not start on http://127.0.0.1:{port}" in said
            assert "is up" not in said
            assert "nats_server.started" not in said  # it stopped before starting anything


@pytest.mark.timeout(120)
def test_up_with_a_misspelt_setting_stops_before_starting_anything(tmp_path: Path) -> None:
    with _up(tmp_path, free_port(), LIVETRANSLATE_VAD_THRESHOLDD="0.5") as (process, stderr):
        assert process.wait(START_TIMEOUT_S) != 0
        said = stderr.read_text()

    assert "LIVETRANSLATE_VAD_THRESHOLDD is not a setting" in said
    assert "did you mean LIVETRANSLATE_VAD_THRESHOLD?" in said
    assert "nats_server.started" not in said
    assert not (tmp_path / "nats").exists()
