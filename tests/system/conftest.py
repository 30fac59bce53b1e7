"""System-test fixtures: the sample team's settings in the environment, and its Orchestrator."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from orchestration import Orchestrator
from workers.processes import WorkerProcess, wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

TEAM = "tests.system.sample_team:orc"
# A coordinator and a worker of every agent, two threads each: what most system tests run.
COORDINATOR_AND_AGENTS = (
    ("--coordinator", "--concurrency", "2"),
    ("--all-agents", "--concurrency", "2"),
)
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def until(found: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
    """Poll ``found`` until it returns something truthy, and return that; fail saying ``what``
    did not happen within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := found()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g}s"
        time.sleep(0.05)
    return value


def agentyard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `agentyard` command as a user would, with this test's settings."""
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


@contextlib.contextmanager
def started_workers(
    orc: Orchestrator,
    env: dict[str, str],
    logs: Path,
    *specs: tuple[str, ...],
    team: str = TEAM,
) -> Iterator[list[WorkerProcess]]:
    """Worker processes of ``team`` (the sample team's by default), one per spec (its
    `agentyard worker` options), started and answering; stopped when the block ends. Logs go
    to ``logs/worker<i>.log``."""
    processes = [
        WorkerProcess(team, *spec, env=env, cwd=ROOT, log_path=logs / f"worker{i}.log")
        for i, spec in enumerate(specs)
    ]
    for process in processes:
        process.start()
    try:
        wait_for_workers(orc.celery, len(processes), processes=processes)
        yield processes
    finally:
        for process in processes:
            process.stop()


class Fleet:
    """The worker processes, each started again under a new name when it is killed."""

    def __init__(self, env: dict[str, str], logs: Path, team: str = TEAM) -> None:
        self._env = env
        self._logs = logs
        self._team = team
        self._started = Counter[str]()
        self.kills = Counter[str]()
        self.workers: dict[str, WorkerProcess] = {}
        self._args: dict[str, tuple[str, ...]] = {}

    def start(self, role: str, *args: str) -> None:
        self._started[role] += 1
        name = f"{role}-{self._started[role]}"
        self.workers[role] = WorkerProcess(
            self._team,
            *args,
            "--name",
            name,
            env=self._env,
            cwd=ROOT,
            log_path=self._logs / f"{role}.log",
        ).start()
        self._args[role] = args

    def kill(self, role: str) -> None:
        """SIGKILL ``role``'s process (and its process group), and leave it dead."""
        self.workers.pop(role).kill()
        self.kills[role] += 1

    def kill_and_restart(self, role: str) -> None:
        self.kill(role)
        self.start(role, *self._args[role])

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


def finished_runs(orc: Orchestrator, ids: list[str]) -> int:
    """How many of the runs ``ids`` have finished, whatever their status."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from storage.db import session_scope
    from storage.models import WorkflowRow

    with session_scope(orc.database_url) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(WorkflowRow)
                .where(col(WorkflowRow.id).in_(ids), col(WorkflowRow.finished_at).is_not(None))
            ).one()
        )


def stub_env(stub: StubAnthropicServer) -> dict[str, str]:
    """Settings that send the sample team's calls through the real SDK to ``stub``."""
    return {
        "SAMPLE_TEAM_MODEL": "claude-haiku-4-5",
        "AGENTYARD_ANTHROPIC_BASE_URL": stub.base_url,
        "AGENTYARD_ANTHROPIC_API_KEY": "sk-stub",
    }


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    """A stub Messages API server for this test (a module overrides it for other settings)."""
    with StubAnthropicServer() as server:
        yield server


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Settings a test module adds for its workers; override it in the module."""
    return {}


@pytest.fixture
def broker_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The broker this test's workers use: the Redis of the shared state, unless the test is
    marked ``ON_BOTH_BROKERS``, which runs it once on Redis and once on a RabbitMQ virtual
    host of its own."""
    if getattr(request, "param", "redis") == "redis":
        return {}
    return {"AGENTYARD_BROKER_URL": request.getfixturevalue("rabbitmq_url")}


# Runs a system test once with its queues on Redis, and once on RabbitMQ.
ON_BOTH_BROKERS = pytest.mark.parametrize("broker_env", ["redis", "rabbitmq"], indirect=True)


@pytest.fixture
def env(
    server_env: dict[str, str],
    broker_env: dict[str, str],
    extra_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """This test's settings, in this process's environment and for its worker processes."""
    merged = {**server_env, **broker_env, **extra_env}
    for name, value in merged.items():
        monkeypatch.setenv(name, value)
    return merged


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    """A fresh Orchestrator for this test's settings (the module's one was built at import)."""
    import tests.system.sample_team as module

    return importlib.reload(module).orc
