"""``LIVETRANSLATE_EDGE_*``: what the edge lets in and how much it holds per browser."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from livetranslate.streams.settings import PREFIX

__all__ = ["EdgeSettings", "OpenSessions"]

OpenSessions = Literal["auto", "true", "false"]


class EdgeSettings(BaseSettings):
    """How the edge guards sessions and bounds what it keeps for each socket."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}EDGE_", extra="ignore", frozen=True)

    open_sessions: OpenSessions = Field(
        default="auto",
        description=(
            "Whether a session with no access record (published straight to the broker, by "
            "`livetranslate publish` or an integrator) may be watched without a token. "
            "'auto' allows it only on sockets that reach the edge through a loopback address, "
            "so `up` on a laptop just works; 'false' for an edge behind a reverse proxy on the "
            "same host, 'true' for a trusted network."
        ),
    )
    backlog_frames: int = Field(
        default=1000,
        ge=1,
        description=(
            "Frames queued for one slow browser before its partials are dropped; a larger "
            "value rides out longer stalls at the cost of memory per viewer."
        ),
    )
    publisher_grace_s: float = Field(
        default=10.0,
        ge=0.0,
        description=(
            "How long a microphone socket that dropped without a clean close may take to come "
            "back before its session's audio is ended; longer survives worse networks, but "
            "keeps the last utterance open that much longer."
        ),
    )
