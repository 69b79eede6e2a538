"""``livetranslate bench`` on one recording: every figure the issue asks for is there."""

from __future__ import annotations

import json
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
