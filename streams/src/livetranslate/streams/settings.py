"""Settings from environment variables, all under the ``LIVETRANSLATE_`` prefix.

Each stage reads its own section (``LIVETRANSLATE_TRANSCRIBE_MODEL`` …). A
wrong value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

__all__ = ["BrokerSettings", "ComputeType", "SettingsError", "load"]

PREFIX = "LIVETRANSLATE_"

S = TypeVar("S", bound=BaseSettings)

ComputeType = Literal[
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]
"""The weight types CTranslate2 accepts; whether the device supports one is
known only when a model loads."""


class SettingsError(SystemExit):
    """A setting has a wrong value; exits the process with the explanation."""


class BrokerSettings(BaseSettings):
    """Where the broker is and how loudly to log."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="Broker to connect to.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the stages' own logs."
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="json for log shippers, console for people."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def load(settings_type: type[S]) -> S:
    """Read ``settings_type`` from the environment, or stop naming what is wrong.

    A variable under the type's own prefix that names none of its settings is
    wrong too (a misspelling would otherwise leave the default in force).
    """
    unknown = _unknown_variables(settings_type, os.environ)
    if unknown:
        raise SettingsError(unknown)
    try:
        return settings_type()
    except ValidationError as exc:
        raise SettingsError(_explain(settings_type, exc)) from exc
    except SourceError as exc:
        # pydantic-settings reports a variable that is not valid JSON (for a
        # dict or list setting) with its field's name, before validation.
        raise SettingsError(f"invalid configuration: {exc} (the value must be JSON)") from exc


def _unknown_variables(settings_type: type[BaseSettings], environ: Mapping[str, str]) -> str:
    """What is wrong with the variables under the type's prefix that it lacks; "" if none."""
    prefix = str(settings_type.model_config.get("env_prefix", "")).upper()
    if prefix == PREFIX:
        return ""  # every setting of every stage lies under the common prefix
    known = sorted(name.upper() for name in settings_type.model_fields)
    lines = []
    for variable in sorted(environ):
        name = variable.upper()
        if name.startswith(prefix) and name.removeprefix(prefix) not in known:
            close = difflib.get_close_matches(name.removeprefix(prefix), known, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            lines.append(f"  {variable} is not a setting{hint}")
    if not lines:
        return ""
    return "\n".join(["invalid configuration:", *lines, f"  {prefix}* takes: {', '.join(known)}"])


def _explain(settings_type: type[BaseSettings], exc: ValidationError) -> str:
    prefix = str(settings_type.model_config.get("env_prefix", ""))
    lines = ["invalid configuration:"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        variable = f"{prefix}{field}".upper()
        lines.append(f"  {variable}={error.get('input')!r}: {error['msg']}")
    return "\n".join(lines)
