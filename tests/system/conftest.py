"""System-test fixtures: the sample team's settings in the environment, and its Orchestrator."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import Orchestrator

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
