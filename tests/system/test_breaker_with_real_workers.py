"""An overloaded provider on the stub server, sixteen worker threads racing: the agent's breaker
opens, the provider is not called while it is open, one probe closes it, every run finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration import Orchestrator, WorkflowStatus
from tests.system.conftest import ROOT, TEAM, stub_env
from workers.processes import WorkerProcess, wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system]

RUNS = 16
FAILURES = 3  # the stub's first three answers are 529 overloaded: the breaker's threshold


@pytest.fixture
def extra_env(stub: StubAnthropicServer) -> dict[str, str]:
    return {
        **stub_env(stub),
        "SAMPLE_TEAM_BREAKER_THRESHOLD": str(FAILURES),
        "SAMPLE_TEAM_BREAKER_RESET_S": "3",  # retries come due while it is open
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
    }


def test_an_overloaded_provider_opens_the_breaker_and_one_probe_closes_it(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    stub.script([{"status": 529, "delay_s": 0.2}] * FAILURES)
    logs = tmp_path / "agents.log"
    workers = [
        WorkerProcess(TEAM, "--coordinator", env=env, cwd=ROOT, log_path=tmp_path / "c.log"),
        WorkerProcess(
            TEAM, "--all-agents", "--concurrency", "16", env=env, cwd=ROOT, log_path=logs
        ),
    ]
    for worker in workers:
        worker.start()
    try:
        wait_for_workers(orc.celery, len(workers), processes=workers)
        runs = [orc.submit("research", f"topic {n}") for n in range(RUNS)]
        results = [run.wait(timeout=90) for run in runs]
    finally:
        for worker in workers:
            worker.stop()

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * RUNS
    # Every call the stub saw: one per step, and the three it answered 529. A call the open
    # breaker turned away never reached it.
    assert stub.stats()["calls"] == 3 * RUNS + FAILURES
    log = logs.read_text()
    assert log.count('"event": "breaker.open"') == 1
    assert log.count('"event": "breaker.probe"') == 1
    assert log.count('"outcome": "breaker_open"') >= 1  # turned away: no call was made
    breakers = orc.breaker_store()
    assert breakers is not None
    opened = [breakers.state(a) for a in ("researcher", "writer", "reviewer")]
    assert sum(s.opened for s in opened) == 1 and all(s.state == "closed" for s in opened)
