"""Settings from the environment: wrong values and unknown names stop start-up."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from livetranslate.streams.settings import PREFIX, BrokerSettings, SettingsError, load


class _Example(BrokerSettings):
    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}EXAMPLE_", frozen=True)

    beam: int = Field(default=1, ge=1)


def test_a_setting_under_its_prefix_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVETRANSLATE_EXAMPLE_BEAM", "5")

    assert load(_Example).beam == 5


def test_a_misspelt_setting_stops_start_up_naming_it_and_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVETRANSLATE_EXAMPLE_BEAM_SIZE", "5")

    with pytest.raises(SettingsError) as raised:
        load(_Example)

    message = str(raised.value)
    assert (
        "LIVETRANSLATE_EXAMPLE_BEAM_SIZE is not a setting; "
        "did you mean LIVETRANSLATE_EXAMPLE_BEAM?" in message
    )
    assert "LIVETRANSLATE_EXAMPLE_* takes: BEAM," in message


def test_other_sections_and_the_common_prefix_are_left_to_their_readers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVETRANSLATE_OTHER_ANYTHING", "1")
    monkeypatch.setenv("LIVETRANSLATE_NATS_URL", "nats://127.0.0.1:4999")

    assert load(_Example).beam == 1
    assert load(BrokerSettings).nats_url == "nats://127.0.0.1:4999"


def test_a_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVETRANSLATE_EXAMPLE_BEAM", "0")

    with pytest.raises(SettingsError, match="LIVETRANSLATE_EXAMPLE_BEAM='0'"):
        load(_Example)
