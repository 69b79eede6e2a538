"""Building the edge app."""

from __future__ import annotations

from pathlib import Path

import pytest
from livetranslate.edge import create_app
from livetranslate.edge.app import DEFAULT_WEB_DIR


def test_the_default_web_folder_holds_the_page() -> None:
    assert (DEFAULT_WEB_DIR / "index.html").is_file()


def test_a_web_folder_without_the_page_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"index\.html"):
        create_app("nats://127.0.0.1:4222", web_dir=tmp_path)
