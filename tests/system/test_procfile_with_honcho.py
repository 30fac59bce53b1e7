"""The Procfile, run by honcho as a user runs it (`honcho start`, from the repository), and a
workflow submitted from another process (`agentyard run`) succeeding through its processes.

What the test changes, and why: the metrics and Flower ports of the Procfile become free ports
(the Procfile's own may be taken on this machine), in a copy of it that is otherwise the same;
the settings are this test's Redis key prefix and PostgreSQL database, from the environment as
the Procfile's header says."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port
from tests.system.conftest import ROOT, agentyard, until

pytestmark = [pytest.mark.integration, pytest.mark.system, pytest.mark.timeout(300)]

PROCFILE = ROOT / "Procfile"


def _with_free_ports(text: str) -> tuple[str, int]:
    """The Procfile with each --metrics-port and --port a free one; and Flower's."""
    ports: dict[str, int] = {}

    def free(match: re.Match[str]) -> str:
        ports[match.group(0)] = port = free_port()
        return f"{match.group(1)} {port}"

    changed = re.sub(r"(--metrics-port|--port) (\d+)", free, text)
    flower = next(port for option, port in ports.items() if option.startswith("--port "))
    return changed, flower


@pytest.fixture
def honcho(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    procfile, flower_port = _with_free_ports(PROCFILE.read_text())
    copy = tmp_path / "Procfile"
    copy.write_text(procfile)
    bin_dir = str(Path(sys.executable).parent)  # where `agentyard` and `honcho` are installed
    log = (tmp_path / "honcho.log").open("w")
    process = subprocess.Popen(
        [str(Path(bin_dir) / "honcho"), "-f", str(copy), "-d", str(ROOT), "start"],
        cwd=ROOT,
        env={**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process, flower_port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # honcho stops every process it started
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def _flower_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_the_procfile_run_by_honcho_serves_a_workflow_submitted_from_another_process(
    honcho: tuple[subprocess.Popen[str], int], env: dict[str, str], tmp_path: Path
) -> None:
    process, flower_port = honcho
    until(lambda: _flower_answers(flower_port) or process.poll() is not None, "Flower answering")
    assert process.poll() is None, (tmp_path / "honcho.log").read_text()[-3000:]

    ran = agentyard(
        env, "run", "examples.team:orc", "research", "the electric telegraph", "--timeout", "80"
    )

    log = (tmp_path / "honcho.log").read_text()
    assert ran.returncode == 0, f"{ran.stdout}{ran.stderr}\n--- honcho:\n{log[-3000:]}"
    assert "status succeeded" in ran.stdout
    assert process.poll() is None  # every process of the Procfile still up
