"""What a tool returned, as the text a tool_result carries."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticSerializationError, to_json


def as_text(result: Any) -> str:
    """A ``str`` as it is; ``None`` as ``""``; anything else as compact JSON, by pydantic (so
    dicts, lists, dataclasses, pydantic models, datetimes, enums, UUIDs and decimals work).

    It never fails: the tool has run, and its side effects may have happened, so what it returned
    must reach the model. A value JSON has no form for is given as its ``str()``, NaN and
    infinities as ``null``, and ``bytes`` as text (base64 when they are not UTF-8).
    """
    if isinstance(result, str):
        return str(result)  # a str subclass (a StrEnum) as its plain text
    if result is None:
        return ""
    try:
        encoded = to_json(result, serialize_unknown=True, inf_nan_mode="null")
    except PydanticSerializationError:  # bytes that are not UTF-8
        encoded = to_json(result, serialize_unknown=True, inf_nan_mode="null", bytes_mode="base64")
    return encoded.decode()
