"""System-test fixtures: the sample team's settings in the environment, and its Orchestrator."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration import Orchestrator
from workers.processes import WorkerProcess, wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

TEAM = "tests.system.sample_team:orc"
ROOT = Path(__file__).resolve().parents[2]


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
    orc: Orchestrator, env: dict[str, str], logs: Path, *specs: tuple[str, ...]
) -> Iterator[list[WorkerProcess]]:
    """Worker processes of the sample team, one per spec (its `agentyard worker` options),
    started and answering; stopped when the block ends. Logs go to ``logs/worker<i>.log``."""
    processes = [
        WorkerProcess(TEAM, *spec, env=env, cwd=ROOT, log_path=logs / f"worker{i}.log")
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
def env(
    server_env: dict[str, str], extra_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """This test's settings, in this process's environment and for its worker processes."""
    merged = {**server_env, **extra_env}
    for name, value in merged.items():
        monkeypatch.setenv(name, value)
    return merged


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    """A fresh Orchestrator for this test's settings (the module's one was built at import)."""
    import tests.system.sample_team as module

    return importlib.reload(module).orc
