"""Following one session's results until its last final and translations are out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from livetranslate.contracts import ContractError, decode, v1
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

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

    def by_speaker(self) -> list[Caption]:
        """The caption cut where the speaker changes, by its words' times.

        Each word goes to the turn that covers its middle (else the nearest);
        translations stay with the last part, since they cover the whole.
        """
        speakers = [_speaker_at((w.start_s + w.end_s) / 2, self.turns) for w in self.words]
        if len(set(speakers)) <= 1:
            return [self]
        parts = _runs(self.words, speakers)
        return [
            Caption(
                utterance_id=self.utterance_id if n == 0 else f"{self.utterance_id}-{n + 1}",
                start_s=words[0].start_s,
                end_s=words[-1].end_s,
                text=" ".join(w.text.strip() for w in words),
                language=self.language,
                translations=self.translations if n == len(parts) - 1 else {},
                speaker=speaker,
            )
            for n, (speaker, words) in enumerate(parts)
        ]


def _all_turns_in(caption: Caption) -> bool:
    return bool(caption.turns) and len(caption.turns) >= caption.turns[0].turns


def _speaker_at(time_s: float, turns: list[v1.SpeakerTurn]) -> str | None:
    if not turns:
        return None
    covering = [t for t in turns if t.start_s <= time_s <= t.end_s]
    if covering:
        return max(covering, key=lambda t: t.confidence).speaker
    nearest = min(turns, key=lambda t: min(abs(t.start_s - time_s), abs(t.end_s - time_s)))
    return nearest.speaker


def _runs(
    words: tuple[v1.Word, ...], speakers: list[str | None]
) -> list[tuple[str | None, list[v1.Word]]]:
    runs: list[tuple[str | None, list[v1.Word]]] = []
    for word, speaker in zip(words, speakers, strict=True):
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    return runs


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
        self._translated: dict[str, dict[str, str]] = {}
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
        self._translated.setdefault(last, {})[language] = translation.text
        for utterance_id in translation.utterance_ids:
            self._attach(utterance_id)

    def _attach(self, utterance_id: str) -> None:
        """Put what arrived for an utterance onto its caption, whichever came first."""
        caption = self.captions.get(utterance_id)
        if caption is None:
            return
        caption.translations.update(self._translated.get(utterance_id, {}))
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
        return same or target in caption.translations or target in caption.joined

    def _check_done(self) -> None:
        for caption in self.ordered():
            if caption.utterance_id not in self._shown and self._complete(caption):
                self._shown.add(caption.utterance_id)
                if self._on_caption and caption.text:
                    self._on_caption(caption)
        if self._expected is not None and len(self._shown) >= self._expected:
            self._done.set()
