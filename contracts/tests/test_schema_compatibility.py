"""The checked-in JSON Schemas: current, and changed only compatibly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livetranslate.contracts.schema import breaking_changes, schemas

PUBLISHED = Path(__file__).resolve().parents[1] / "schemas"


@pytest.mark.parametrize("name", sorted(schemas()))
def test_published_schema_is_still_honoured(name: str) -> None:
    path = PUBLISHED / f"{name}.json"
    assert path.exists(), f"{path} missing: run `livetranslate schemas`"
    problems = breaking_changes(json.loads(path.read_text()), schemas()[name])
    assert problems == [], f"{name} changed incompatibly; publish a new version instead"


def test_every_published_schema_still_has_a_contract() -> None:
    published = {path.stem for path in PUBLISHED.glob("*.json")}
    assert published <= set(schemas()), "a published contract was removed"


BASE = {
    "properties": {"text": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["text"],
}


def test_removed_field_is_breaking() -> None:
    current = {"properties": {"text": {"type": "string"}}, "required": ["text"]}
    assert breaking_changes(BASE, current) == ["field 'n' removed or renamed"]


def test_changed_type_is_breaking() -> None:
    current = {**BASE, "properties": {**BASE["properties"], "n": {"type": "string"}}}
    assert "field 'n' changed type" in breaking_changes(BASE, current)[0]


def test_new_required_field_is_breaking() -> None:
    current = {
        "properties": {**BASE["properties"], "lang": {"type": "string"}},
        "required": ["text", "lang"],
    }
    assert breaking_changes(BASE, current) == ["new required field 'lang'"]


def test_new_optional_field_is_compatible() -> None:
    current = {**BASE, "properties": {**BASE["properties"], "lang": {"type": "string"}}}
    assert breaking_changes(BASE, current) == []
