"""``DiarizeSettings`` from the environment, and what a bad model path does at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from livetranslate.diarize import ModelUnavailableError
from livetranslate.diarize.stage import DiarizeSettings, DiarizeStage
from livetranslate.streams.settings import SettingsError, load


def test_clustering_settings_come_from_the_diarize_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVETRANSLATE_DIARIZE_MAX_SPEAKERS", "3")
    monkeypatch.setenv("LIVETRANSLATE_DIARIZE_THRESHOLD", "0.35")

    options = load(DiarizeSettings).cluster_options()

    assert (options.max_speakers, options.threshold, options.min_voice_s) == (3, 0.35, 0.5)


def test_a_wrong_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVETRANSLATE_DIARIZE_MAX_SPEAKERS", "0")

    with pytest.raises(SettingsError, match="LIVETRANSLATE_DIARIZE_MAX_SPEAKERS"):
        load(DiarizeSettings)


async def test_a_missing_model_file_fails_at_start_not_on_the_first_utterance(
    tmp_path: Path,
) -> None:
    settings = DiarizeSettings(embedder_model=tmp_path / "absent.onnx")

    with pytest.raises(ModelUnavailableError, match=r"absent\.onnx"):
        await DiarizeStage(settings).start(sessions=None)  # type: ignore[arg-type]
