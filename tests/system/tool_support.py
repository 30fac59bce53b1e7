"""What the system tests of tools share: the tool team's settings and Orchestrator, a scripted
answer that asks for tools, and the lines its tools wrote."""

from __future__ import annotations

import importlib
from pathlib import Path

from orchestration import Orchestrator
from workers.stub_anthropic import StubServer

TEAM = "tests.system.tool_team:orc"


def tool_team_env(stub: StubServer, outbox: Path, **knobs: str) -> dict[str, str]:
    """Settings that send the tool team's calls to ``stub`` and its tools' lines to ``outbox``;
    ``knobs`` add to them."""
    return {
        "AGENTYARD_ANTHROPIC_BASE_URL": stub.base_url,
        "AGENTYARD_ANTHROPIC_API_KEY": "sk-stub",
        "TOOL_TEAM_FILE": str(outbox),
        **knobs,
    }


def tool_team() -> Orchestrator:
    """The tool team's Orchestrator, made afresh for this test's settings (in the environment)."""
    import tests.system.tool_team as module

    return importlib.reload(module).orc


def uses(*calls: tuple[str, dict[str, object]]) -> dict[str, object]:
    """A scripted answer that asks for each ``(tool, arguments)`` in turn."""
    return {"tool_use": [{"name": name, "input": arguments} for name, arguments in calls]}


def lines(path: Path, prefix: str) -> list[str]:
    """The lines of ``path`` that start with ``prefix`` (none when nothing wrote it yet)."""
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if line.startswith(prefix)]
