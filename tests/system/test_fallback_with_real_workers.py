"""An agent whose provider refuses every call: its fallback takes the step over, on real worker
processes, and each result says which agent produced it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration import Orchestrator, WorkflowStatus
from tests.system.conftest import started_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "SAMPLE_TEAM_WRITER_MODEL": "offline:echo?fail=rejected",  # an error no retry mends
        "SAMPLE_TEAM_WRITER_FALLBACK": "reviewer",
    }


def test_the_fallback_agent_takes_over_a_step_its_agent_cannot_do(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator
) -> None:
    with started_workers(orc, env, tmp_path, ("--coordinator",), ("--all-agents",)):
        results = [orc.submit("research", f"topic {n}").wait(timeout=60) for n in range(4)]

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 4
    for result in results:
        writer_step = result.steps[1]
        assert (writer_step.requested_agent, writer_step.agent) == ("writer", "reviewer")
        assert writer_step.attempt == 2  # the writer's refused attempt, then the fallback's
