"""JSON Schema export of the contracts, and the compatibility rule for them.

The exported schemas are checked in under ``contracts/schemas/``. A change
is compatible when every published field keeps its name and type and no new
field is required; anything else needs a new contract version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from livetranslate.contracts import v1

__all__ = ["breaking_changes", "export", "schemas"]


def schemas() -> dict[str, dict[str, Any]]:
    """``<name>.v1`` -> JSON Schema of that contract."""
    return {
        f"{name}.v{v1.VERSION}": model.model_json_schema() for name, model in v1.CONTRACTS.items()
    }


def export(folder: Path) -> list[Path]:
    """Write one ``<name>.v1.json`` per contract; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def breaking_changes(published: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What in ``current`` would break a reader of ``published``."""
    problems = []
    old_props = published.get("properties", {})
    new_props = current.get("properties", {})
    for field, old in old_props.items():
        new = new_props.get(field)
        if new is None:
            problems.append(f"field {field!r} removed or renamed")
        elif _type_of(old) != _type_of(new):
            problems.append(f"field {field!r} changed type: {_type_of(old)} -> {_type_of(new)}")
    newly_required = set(current.get("required", [])) - set(published.get("required", []))
    problems += [f"new required field {field!r}" for field in sorted(newly_required)]
    return problems


def _type_of(prop: dict[str, Any]) -> Any:
    """The part of a property schema that decides what values it accepts."""
    keys = ("type", "anyOf", "$ref", "items", "enum", "const", "format", "prefixItems")
    return json.dumps({k: prop[k] for k in keys if k in prop}, sort_keys=True)
