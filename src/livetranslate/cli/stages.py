"""The stages a process can run, by name, imported only when asked for.

Importing lazily keeps ``livetranslate run vad`` from loading the
recogniser's or translator's libraries.
"""

from __future__ import annotations

from enum import Enum

from livetranslate.streams import Stage

__all__ = ["PIPELINE", "StageName", "build"]


class StageName(Enum):
    vad = "vad"
    transcribe = "transcribe"
    translate = "translate"
    diarize = "diarize"
    analytics = "analytics"


PIPELINE = (
    StageName.vad,
    StageName.transcribe,
    StageName.translate,
    StageName.diarize,
    StageName.analytics,
)
"""The stages ``up`` and ``transcribe`` run in one process."""


def build(name: StageName) -> Stage:
    """A stage with its settings read from the environment (stops on a bad value)."""
    from livetranslate.streams.settings import load

    if name is StageName.vad:
        from livetranslate.vad.stage import VadSettings, VadStage

        return VadStage(load(VadSettings))
    if name is StageName.transcribe:
        from livetranslate.transcribe.stage import TranscribeSettings, TranscribeStage

        return TranscribeStage(load(TranscribeSettings))
    if name is StageName.translate:
        from livetranslate.translate.stage import TranslateSettings, TranslateStage

        return TranslateStage(load(TranslateSettings))
    if name is StageName.diarize:
        from livetranslate.diarize.stage import DiarizeSettings, DiarizeStage

        return DiarizeStage(load(DiarizeSettings))
    from livetranslate.analytics.stage import AnalyticsSettings, AnalyticsStage

    return AnalyticsStage(load(AnalyticsSettings))
