"""The smallest value a JSON Schema accepts, made deterministically: the arguments an offline
model calls a tool with (``offline.py``). Pure; pydantic-made schemas (``$ref``, ``anyOf``,
bounds) included."""

from __future__ import annotations

import math
from typing import Any


def instance_of(schema: Any, text: str, root: Any = None) -> Any:
    """The smallest value ``schema`` (JSON Schema) accepts, made deterministically: an object's
    required properties only, ``text`` for a string (cut or padded to its length bounds), 1 for
    a number (or the bound nearest), false, one item for an array, an enum's first value, a
    local ``$ref`` followed."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return instance_of(target, text, root)
    for combined in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combined)
        if isinstance(options, list) and options:
            if combined == "allOf":  # every part must hold: their keywords together
                merged: dict[str, Any] = {}
                for part in options:
                    if isinstance(part, dict):
                        merged |= part
                return instance_of(merged, text, root)
            return instance_of(options[0], text, root)
    kind = schema.get("type")
    if isinstance(kind, list):  # the first type that is not null, as a writer means it
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: instance_of(properties.get(name, {}), text, root)
            for name in schema.get("required") or []
        }
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [instance_of(schema.get("items", {}), text, root) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    value = text.ljust(low, ".")
    return value[: int(high)] if high is not None else value


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    value: float = 1
    step = 1 if integer else 0.5
    if "minimum" in schema and value < schema["minimum"]:
        value = schema["minimum"]
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = schema["exclusiveMinimum"] + step
    if "maximum" in schema and value > schema["maximum"]:
        value = schema["maximum"]
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        value = schema["exclusiveMaximum"] - step
    return math.ceil(value) if integer else value
