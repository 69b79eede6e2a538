"""Captions as text, JSON or SubRip subtitles."""

from __future__ import annotations

import json
from collections.abc import Sequence

from livetranslate.cli.session import Caption

__all__ = ["caption_line", "document", "srt"]


def timestamp(seconds: float, separator: str = ".") -> str:
    """``3725.5`` -> ``01:02:05.500`` (SubRip uses ``,`` before the milliseconds)."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def caption_line(caption: Caption) -> str:
    """A final as the terminal shows it, one line per speaker, translations beneath."""
    return "\n".join(_line(part) for part in caption.by_speaker())


def _line(caption: Caption) -> str:
    speaker = f"{caption.speaker}: " if caption.speaker else ""
    lines = [
        f"[{timestamp(caption.start_s)} --> {timestamp(caption.end_s)}] {speaker}{caption.text}"
    ]
    lines += [f"    {lang}: {text}" for lang, text in sorted(caption.translations.items())]
    return "\n".join(lines)


def document(session_id: str, language: str | None, captions: Sequence[Caption]) -> str:
    """The JSON document ``transcribe --format json`` prints."""
    body = {
        "session": session_id,
        "language": language,
        "utterances": [
            {
                "id": c.utterance_id,
                "start_s": round(c.start_s, 3),
                "end_s": round(c.end_s, 3),
                "text": c.text,
                "speaker": c.speaker,
                "translations": c.translations,
            }
            for c in _parts(captions)
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def srt(captions: Sequence[Caption]) -> str:
    """SubRip subtitles; translations as further lines of the same cue."""
    cues = []
    for number, caption in enumerate(_parts(captions), start=1):
        span = f"{timestamp(caption.start_s, ',')} --> {timestamp(caption.end_s, ',')}"
        speaker = f"[{caption.speaker}] " if caption.speaker else ""
        text = [
            speaker + caption.text,
            *(caption.translations[k] for k in sorted(caption.translations)),
        ]
        cues.append("\n".join([str(number), span, *text]))
    return "\n\n".join(cues) + ("\n" if cues else "")


def _parts(captions: Sequence[Caption]) -> list[Caption]:
    """Captions with text, each cut where its speaker changes."""
    return [part for caption in captions if caption.text for part in caption.by_speaker()]
