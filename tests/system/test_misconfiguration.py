"""The first-day mistakes of a user who runs agentyard from a shell, with real servers: each is
refused at once with what to set and an exit code that says which kind of trouble it is, or
(a submitter on another database than its workers) dead-lettered by the worker saying why,
never accepted and left to wait out its timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestration import Orchestrator
from orchestration.cli.exit_codes import ExitCode
from storage.db import session_scope
from storage.models import DeadLetterRow
from tests.system.conftest import ROOT, TEAM, agentyard, started_workers


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(env: dict[str, str], **changes: str | None) -> tuple[int, str, str]:
    """``agentyard run`` of the sample team in a shell with ``env`` changed (None: unset)."""
    shell = {**os.environ, **env, **{k: v for k, v in changes.items() if v is not None}}
    for name in (k for k, v in changes.items() if v is None):
        shell.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "run", TEAM, "research", "x", "--timeout", "8"],
        env=shell,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        (
            {"AGENTYARD_DATABASE_URL": None},
            ExitCode.CONFIGURATION,
            "AGENTYARD_REDIS_URL (or AGENTYARD_BROKER_URL) is set but AGENTYARD_DATABASE_URL",
        ),
        (
            {"AGENTYARD_REDIS_URL": None},
            ExitCode.CONFIGURATION,
            "AGENTYARD_DATABASE_URL is set but AGENTYARD_REDIS_URL is not",
        ),
        (
            {"AGENTYARD_REDIS_URL": "redis://127.0.0.1:notaport/0"},
            ExitCode.CONFIGURATION,
            "AGENTYARD_REDIS_URL: the port of",
        ),
        (
            {"AGENTYARD_REDIS_URL": "http://127.0.0.1:6379/0"},
            ExitCode.CONFIGURATION,
            "AGENTYARD_REDIS_URL: the scheme 'http'",
        ),
        (
            {"AGENTYARD_REDIS_URL": "redis//127.0.0.1:6379/0"},
            ExitCode.CONFIGURATION,
            "is not a URL",
        ),
        (
            {"AGENTYARD_REDIS_URL": "redis://127.0.0.1:6379/99"},
            ExitCode.UNAVAILABLE,
            "cannot reach the broker at redis://127.0.0.1:6379/99",
        ),
        (
            {"AGENTYARD_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"},
            ExitCode.UNAVAILABLE,
            "cannot reach the broker at redis://127.0.0.1:",
        ),
        ({"AGENTYARD_LOG_LEVEL": "LOUD"}, ExitCode.CONFIGURATION, "AGENTYARD_LOG_LEVEL"),
        (
            {"AGENTYARD_TASK_TIME_LIMIT_S": "7200"},
            ExitCode.CONFIGURATION,
            "AGENTYARD_TASK_TIME_LIMIT_S must be below AGENTYARD_VISIBILITY_TIMEOUT_S",
        ),
    ],
    ids=[
        "redis-without-database",
        "database-without-redis",
        "port-not-a-number",
        "http-scheme",
        "no-scheme",
        "redis-db-99",
        "closed-port",
        "unknown-log-level",
        "time-limit-over-visibility",
    ],
)
def test_a_misconfigured_submit_is_refused_at_once_with_what_to_set(
    env: dict[str, str], changes: dict[str, str | None], code: int, says: str
) -> None:
    returned, out, err = _run(env, **changes)

    assert returned == code, err
    assert "submitted run" not in out
    assert says in err
    assert "Traceback" not in err
    assert err.startswith("agentyard: ")


def test_a_request_from_a_submitter_on_another_database_is_dead_lettered_by_the_worker_saying_why(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    # Given a worker on the shared Redis and PostgreSQL, and a shell on the same Redis whose
    # database is a SQLite file of its own (both set, so the settings take it)
    with started_workers(orc, env, tmp_path, ("--agents", "researcher")):
        elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
        done = agentyard(
            {**env, "AGENTYARD_DATABASE_URL": elsewhere},
            "run",
            TEAM,
            "research",
            "history of the telegraph",
            "--no-wait",
        )
        assert done.returncode == ExitCode.OK, done.stderr
        run_id = done.stdout.split()[-1]

        # Then the worker dead-letters the request, naming the likely cause
        deadline = time.monotonic() + 60
        letters: list[DeadLetterRow] = []
        while not letters and time.monotonic() < deadline:
            with session_scope(orc.database_url) as session:
                # the session's database holds other tests' dead letters too
                mine = select(DeadLetterRow).where(col(DeadLetterRow.reason).contains(run_id))
                letters = list(session.exec(mine).all())
            time.sleep(0.2)
    [letter] = letters
    assert f"of run {run_id} is not in this worker's database" in letter.reason
    assert letter.recipient == "researcher"


def test_input_on_the_command_line_that_is_not_utf_8_is_refused_with_where_it_is(
    env: dict[str, str],
) -> None:
    # Python hands a program bytes that are not UTF-8 as lone surrogates: caught at submit
    command = [sys.executable.encode(), b"-m", b"orchestration.cli", b"run", TEAM.encode()]
    done = subprocess.run(
        [*command, b"research", b"caf\xe9 au lait"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        timeout=90,
    )
    err = done.stderr.decode(errors="replace")
    assert done.returncode == ExitCode.USAGE, err
    assert "is not valid text at position 3" in err and "Traceback" not in err
