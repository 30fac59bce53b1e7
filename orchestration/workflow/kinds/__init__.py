"""The kinds of composite node, one module each (see ``base.py`` for the face they share)."""

from __future__ import annotations

from orchestration.workflow.kinds import fan_out, loop, parallel, route
from orchestration.workflow.kinds.base import Kind

KINDS: dict[str, Kind] = {
    "loop": loop,
    "fan_out": fan_out,
    "parallel": parallel,
    "route": route,
}


def kind(name: str) -> Kind:
    return KINDS[name]
