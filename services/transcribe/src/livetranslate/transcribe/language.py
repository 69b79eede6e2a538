"""Which language a session speaks, followed from utterance to utterance.

A session's config may fix its language. When it does not, and the model
knows more than English, the language is detected per utterance, but a
single detection does not change it: a short "OK" or a name is often heard
as another language. The session's language changes only when enough
consecutive long utterances are confidently detected as the same other
language.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LanguageOptions", "SessionLanguage"]


class LanguageOptions(BaseModel):
    """How readily a session's detected language changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_detect_s: float = Field(
        default=2.0,
        ge=0.0,
        description=(
            "Utterances shorter than this keep the session's language without a "
            "detection: Whisper's guess on a word or two is unreliable."
        ),
    )
    switch_probability: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="A detection of another language counts towards a switch at this confidence.",
    )
    switch_after: int = Field(
        default=2,
        ge=1,
        description=(
            "Consecutive utterances detected as the same other language that switch the "
            "session to it. 1 follows every confident detection."
        ),
    )


class SessionLanguage:
    """The language of one session: fixed, or detected with hysteresis."""

    def __init__(self, fixed: str | None = None, options: LanguageOptions | None = None) -> None:
        self.fixed = fixed
        self.options = options or LanguageOptions()
        self._current: str | None = None
        self._challenger: str | None = None
        self._streak = 0

    @property
    def current(self) -> str | None:
        """The language the session is taken to speak; None before the first detection."""
        return self.fixed or self._current

    def needs_detection(self, duration_s: float) -> bool:
        """Whether an utterance this long should have its language detected."""
        if self.fixed is not None:
            return False
        return self._current is None or duration_s >= self.options.min_detect_s

    def observe(self, language: str, probability: float, duration_s: float) -> str:
        """Take one utterance's detection; return the language to transcribe it in."""
        if self.fixed is not None:
            return self.fixed
        if self._current is None:
            self._current = language
            return language
        if language == self._current:
            self._challenger, self._streak = None, 0
            return language
        if probability < self.options.switch_probability or duration_s < self.options.min_detect_s:
            return self._current
        self._streak = self._streak + 1 if language == self._challenger else 1
        self._challenger = language
        if self._streak >= self.options.switch_after:
            self._current, self._challenger, self._streak = language, None, 0

        return self._current
