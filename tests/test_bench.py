"""``livetranslate bench`` on one recording: every figure is there, and a signal stops it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from librivox import FOLDER
from typer.testing import CliRunner

from livetranslate.cli.main import app

pytestmark = [pytest.mark.broker, pytest.mark.model]

RECORDING = FOLDER / "sense_and_sensibility_01_austen_64kb-0870.wav"
"""7 s: long enough for partials with stable words."""


def test_bench_of_one_file_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"

    result = CliRunner().invoke(app, ["bench", str(RECORDING), "--json", str(out)])

    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for key in ("final_latency_s", "first_partial_latency_s"):
        assert 0.0 < report[key]["p50"] <= report[key]["p95"] < 10.0
    assert (
        0.0 < report["partial_interval_s"]["p50"] < 10.0
        or report["partial_interval_s"]["count"] == 0
    )
    assert report["stable_words_shown"] > 0
    assert 0.0 <= report["partial_rewrite_rate"] <= 1.0
    assert 0.0 <= report["wer"] <= 0.5
    assert 0.0 <= report["offline_wer"] <= 0.5
    assert report["wer_ratio"] is None or report["wer_ratio"] >= 0.0
    assert report["offline_wide_beam"] == 5
    assert 0.0 <= report["offline_wide_beam_wer"] <= 0.5
    for key in ("cpu_s_per_audio_s", "offline_cpu_s_per_audio_s", "cpu_ratio"):
        assert 0.0 < report[key] < 10.0
    assert report["finals_missing"] == 0
    assert set(report["drops"]) == {"final", "partial", "cut"}
    assert "final_latency_s" in result.output


def test_bench_stops_at_the_first_sigterm(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("livetranslate")
    bench = subprocess.Popen(
        # A curve plays for a minute or more: a stop within seconds is the signal's doing.
        [str(cli), "bench", str(RECORDING), "--curve", "--json", str(tmp_path / "b.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(8.0)  # broker up, models loading or sessions playing
    assert bench.poll() is None, "the run ended before the signal; nothing was tested"

    bench.send_signal(signal.SIGTERM)

    assert bench.wait(10) == 130
    assert not (tmp_path / "b.json").exists()
