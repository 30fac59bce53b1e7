"""`agentyard trace`, `agentyard graph` and `agentyard find`, run as a user would, on a workflow
that real worker processes ran: the writer is rate-limited on every call, retried once, then
its fallback (the reviewer) takes the step over."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration import Orchestrator, WorkflowStatus
from tests.system.conftest import TEAM, agentyard, started_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "SAMPLE_TEAM_NAME": "trace-view",  # `find TEAM` counts this team's runs only
        "SAMPLE_TEAM_WRITER_MODEL": "offline:echo?fail=rate_limited",  # asks for a 0.05 s wait
        "SAMPLE_TEAM_WRITER_FALLBACK": "reviewer",
        "SAMPLE_TEAM_MAX_RETRIES": "1",
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",  # the sweep dispatches retries that came due
    }


@pytest.fixture
def workers(tmp_path: Path, env: dict[str, str], orc: Orchestrator) -> Iterator[None]:
    with started_workers(orc, env, tmp_path, ("--coordinator",), ("--all-agents",)):
        yield


def test_a_user_sees_the_retry_and_the_fallback_of_a_run_in_its_trace_and_its_graph(
    workers: None, orc: Orchestrator, env: dict[str, str]
) -> None:
    result = orc.submit("research", "the telegraph").wait(timeout=60)
    assert result.status is WorkflowStatus.SUCCEEDED

    tree = agentyard(env, "trace", TEAM, result.id)
    graph = agentyard(env, "graph", TEAM, result.id, "--format", "json")
    found = agentyard(env, "find", TEAM, "--agent", "reviewer", "--cost-over", "0")

    assert (tree.returncode, tree.stderr) == (0, ""), tree.stderr
    lines = [line.lstrip("│├└─ ") for line in tree.stdout.splitlines()]
    assert lines[0].startswith(f"workflow research  {result.id}  succeeded  took ")
    (writer_step,) = [line for line in lines if line.startswith("step 2  ")]
    assert writer_step.startswith("step 2  reviewer  succeeded  ")
    assert writer_step.endswith("1 retry  fallback: writer -> reviewer")
    attempts = [line.split("  ")[:3] for line in lines if line.startswith("attempt ")]
    assert attempts == [
        ["attempt 1", "researcher", "succeeded"],
        ["attempt 1", "writer", "rate_limited"],
        ["attempt 2", "writer", "rate_limited"],
        ["attempt 3", "reviewer", "succeeded"],
        ["attempt 1", "reviewer", "succeeded"],
    ]

    assert graph.returncode == 0, graph.stderr
    shape = json.loads(graph.stdout)
    assert (shape["workflow"]["id"], shape["workflow"]["status"]) == (result.id, "succeeded")
    assert [(e["source"], e["target"], e["kind"]) for e in shape["edges"]] == [
        ("s1a1", "s2a1", "input"),
        ("s2a1", "s2a2", "retry"),
        ("s2a2", "s2a3", "fallback"),
        ("s2a3", "s3a1", "input"),
    ]
    assert shape["workflow"]["cost_micro"] == round(result.cost_usd * 1e6) > 0

    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("1 run(s) of team 'trace-view' where agent 'reviewer' cost more")
    assert result.id in found.stdout
