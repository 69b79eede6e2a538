"""Building the edge app."""

from __future__ import annotations

from pathlib import Path

import pytest

from livetranslate.edge import EdgeSettings, create_app
from livetranslate.edge.app import DEFAULT_WEB_DIR
from livetranslate.edge.broker import BrokerLink
from livetranslate.edge.context import EdgeContext
from livetranslate.streams.settings import SettingsError


def test_the_default_web_folder_holds_the_page() -> None:
    assert (DEFAULT_WEB_DIR / "index.html").is_file()


def test_a_web_folder_without_the_page_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"index\.html"):
        create_app("nats://127.0.0.1:4222", web_dir=tmp_path)


def test_a_wrong_edge_setting_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVETRANSLATE_EDGE_OPEN_SESSIONS", "maybe")

    with pytest.raises(SettingsError, match="LIVETRANSLATE_EDGE_OPEN_SESSIONS"):
        create_app("nats://127.0.0.1:4222")


def context(open_sessions: str) -> EdgeContext:
    settings = EdgeSettings.model_validate({"open_sessions": open_sessions})
    return EdgeContext(BrokerLink("nats://127.0.0.1:4222"), settings, DEFAULT_WEB_DIR)


@pytest.mark.parametrize(
    ("setting", "server", "opens"),
    [
        ("auto", ("127.0.0.1", 8000), True),
        ("auto", ("::1", 8000), True),
        ("auto", ("192.0.2.10", 8000), False),
        ("auto", None, False),
        ("auto", ("/run/edge.sock", None), False),
        ("false", ("127.0.0.1", 8000), False),
        ("true", ("192.0.2.10", 8000), True),
    ],
)
def test_sessions_without_tokens_open_by_setting_and_address(
    setting: str, server: tuple[str, int | None] | None, opens: bool
) -> None:
    assert context(setting).opens_sessions_to({"type": "websocket", "server": server}) is opens
