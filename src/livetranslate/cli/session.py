"""Following one session's results until its last final and translations are out."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from livetranslate.contracts import ContractError, decode, v1
from livetranslate.translate.speakers import speaker_runs

__all__ = ["Caption", "CaptionCallback", "SessionWatch"]


@dataclass
class Caption:
    """One utterance as shown: its final text, translations and speaker."""

    utterance_id: str
    start_s: float
    end_s: float
    text: str
    language: str | None
    translations: dict[str, str] = field(default_factory=dict)
    speaker: str | None = None
    joined: set[str] = field(default_factory=set)
    """Languages in which a later caption's translation covers this one as well."""
    words: tuple[v1.Word, ...] = ()
    turns: list[v1.SpeakerTurn] = field(default_factory=list)
    """Who spoke when inside the utterance, as the diarizer found it."""

    translation_parts: dict[str, dict[float, str]] = field(default_factory=dict)
    """Per language, the translations ending inside this utterance, by their end time.

    Where one utterance holds several speakers, each speaker's part is translated
    on its own; a translation that names no end covers the whole (``inf``).
    """

    def by_speaker(self) -> list[Caption]:
        """The caption cut where the speaker changes, by its words' times.

        Each part gets the translations that end nearest its own end.
        """
        runs = speaker_runs(self.words, self.turns)
        if len(runs) <= 1:
            return [self]
        ends = [words[-1].end_s for _, words in runs]
        translations: list[dict[str, list[str]]] = [{} for _ in runs]
        for language, parts in self.translation_parts.items():
            for end_s, text in sorted(parts.items()):
                nearest = min(range(len(ends)), key=lambda n: abs(ends[n] - min(end_s, ends[-1])))
                translations[nearest].setdefault(language, []).append(text)
        return [
            Caption(
                utterance_id=self.utterance_id if n == 0 else f"{self.utterance_id}-{n + 1}",
                start_s=words[0].start_s,
                end_s=words[-1].end_s,
                text=" ".join(w.text.strip() for w in words),
                language=self.language,
                translations={lang: " ".join(texts) for lang, texts in translations[n].items()},
                speaker=speaker,
            )
            for n, (speaker, words) in enumerate(runs)
        ]

    def translated_to_the_end(self, language: str) -> bool:
        """Whether a translation into ``language`` covers this caption's last speaker."""
        runs = speaker_runs(self.words, self.turns)
        last_start = runs[-1][1][0].start_s if len(runs) > 1 else float("-inf")
        return any(end_s > last_start for end_s in self.translation_parts.get(language, {}))


def _all_turns_in(caption: Caption) -> bool:
    return bool(caption.turns) and len(caption.turns) >= caption.turns[0].turns


CaptionCallback = Callable[[Caption], None]
PartialCallback = Callable[[v1.Transcript], None]


class SessionWatch:
    """Subscribes to a session's speech events, transcripts and translations.

    It is done once the VAD has closed the session and every utterance has
    its final and, for a final with text, a translation into every target.
    """

    def __init__(
        self,
        client: Client,
        session_id: str,
        targets: tuple[str, ...],
        on_caption: CaptionCallback | None = None,
        on_partial: PartialCallback | None = None,
        *,
        speakers: bool = False,
    ) -> None:
        self.session_id = session_id
        self.targets = targets
        self.captions: dict[str, Caption] = {}
        self.language: str | None = None
        self._js: JetStreamContext = client.jetstream()
        self._on_caption = on_caption
        self._on_partial = on_partial
        self._speakers = speakers
        self._turns: dict[str, list[v1.SpeakerTurn]] = {}
        self._translated: dict[str, dict[str, dict[float, str]]] = {}
        self._joined: dict[str, set[str]] = {}
        self._expected: int | None = None
        self._shown: set[str] = set()
        self._done = asyncio.Event()
        self._subscriptions: list[JetStreamContext.PushSubscription] = []

    async def start(self) -> None:
        sid = self.session_id
        wanted = [f"vad.{sid}", f"transcript.*.{sid}", f"translation.*.{sid}"]
        if self._speakers:
            wanted.append(f"speaker.{sid}")
        for subject in wanted:
            subscription = await self._js.subscribe(subject, cb=self._on_msg, ordered_consumer=True)
            self._subscriptions.append(subscription)

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def wait(self, timeout_s: float | None = None) -> None:
        await asyncio.wait_for(self._done.wait(), timeout_s)

    def ordered(self) -> list[Caption]:
        return sorted(self.captions.values(), key=lambda c: c.start_s)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            contract = decode(msg.headers, msg.data).contract
        except ContractError:
            return
        if isinstance(contract, v1.VadEvent) and contract.kind == "session_end":
            self._expected = contract.utterances
        elif isinstance(contract, v1.Transcript):
            self._on_transcript(contract)
        elif isinstance(contract, v1.Translation) and contract.kind == "final":
            self._on_translation(contract)
        elif isinstance(contract, v1.SpeakerTurn):
            self._on_turn(contract)
        self._check_done()

    def _on_transcript(self, transcript: v1.Transcript) -> None:
        if transcript.kind == "partial":
            if self._on_partial and transcript.utterance_id not in self.captions:
                self._on_partial(transcript)
            return
        self.language = self.language or transcript.language
        self.captions[transcript.utterance_id] = Caption(
            utterance_id=transcript.utterance_id,
            start_s=transcript.start_s,
            end_s=transcript.end_s,
            text=transcript.text.strip(),
            language=transcript.language,
            words=transcript.words,
        )
        self._attach(transcript.utterance_id)

    def _on_translation(self, translation: v1.Translation) -> None:
        """A translation of joined finals is shown once, under the last of them."""
        *earlier, last = translation.utterance_ids
        language = translation.target_language
        for utterance_id in earlier:
            self._joined.setdefault(utterance_id, set()).add(language)
        # A later translation of the same text (a redelivered final) replaces it.
        end_s = math.inf if translation.end_s is None else translation.end_s
        self._translated.setdefault(last, {}).setdefault(language, {})[end_s] = translation.text
        for utterance_id in translation.utterance_ids:
            self._attach(utterance_id)

    def _attach(self, utterance_id: str) -> None:
        """Put what arrived for an utterance onto its caption, whichever came first."""
        caption = self.captions.get(utterance_id)
        if caption is None:
            return
        parts = self._translated.get(utterance_id, {})
        caption.translation_parts = {lang: dict(texts) for lang, texts in parts.items()}
        caption.translations = {
            lang: " ".join(text for _, text in sorted(texts.items()))
            for lang, texts in parts.items()
        }
        caption.joined |= self._joined.get(utterance_id, set())
        caption.turns = self._turns.get(utterance_id, [])
        # The whole utterance is labelled with its first speaker; by_speaker() splits it.
        caption.speaker = caption.turns[0].speaker if caption.turns else None

    def _on_turn(self, turn: v1.SpeakerTurn) -> None:
        self._turns.setdefault(turn.utterance_id, []).append(turn)
        self._attach(turn.utterance_id)

    def _complete(self, caption: Caption) -> bool:
        if not caption.text:
            return True
        translated = all(self._translated_into(caption, t) for t in self.targets)
        return translated and (_all_turns_in(caption) or not self._speakers)

    @staticmethod
    def _translated_into(caption: Caption, target: str) -> bool:
        # Speech already in the target language is not translated.
        same = caption.language is not None and caption.language == target
        return same or caption.translated_to_the_end(target) or target in caption.joined

    def _check_done(self) -> None:
        for caption in self.ordered():
            if caption.utterance_id not in self._shown and self._complete(caption):
                self._shown.add(caption.utterance_id)
                if self._on_caption and caption.text:
                    self._on_caption(caption)
        if self._expected is not None and len(self._shown) >= self._expected:
            self._done.set()
