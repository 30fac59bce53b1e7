"""Every Python and shell snippet of README.md, run top to bottom against real workers.

The blocks are read from README.md when the test runs (``tests/readme_snippets.py`` says how, and
how a block that cannot run here is marked), so the README cannot drift from the code. They run
as a user following the README runs them: in a temporary directory of their own, the shell lines
one by one (each must exit 0), the long-running ones in the background, each waited for until it
answers; the Python blocks in one Python session, in this process. The researcher's model,
``claude-haiku-4-5``, goes through the real SDK to the stub server the README starts.

What the test changes in what it runs, and why:

- ``RUN_ID``: the id of the latest run a snippet made (``run.id`` in the Python session, then the
  run ``agentyard run`` printed as ``submitted run <id>``).
- ``ID`` (a dead letter): one the test makes just before, by publishing a notification to the
  researcher, which has no handler, so its worker dead-letters it.
- The ports ``8765`` (the stub) and ``5555`` (Flower): free ports, since the README's may be taken
  on this machine.
- ``export AGENTYARD_REDIS_URL=...`` and ``export AGENTYARD_DATABASE_URL=...``: this test's Redis
  and a PostgreSQL database of its own; ``AGENTYARD_REDIS_KEY_PREFIX`` (its own) and
  ``AGENTYARD_HOME`` (in the temporary directory) are set from the start, and every other
  ``AGENTYARD_*`` variable of the outer environment is removed.
- Each shell line must exit 0, or the code its comment gives (``# exits N``).
- ``make`` lines run in the clone, where the Makefile is, on the virtualenv this test runs in,
  which is not set up again (``VENV=... -o .../.installed-stamp``).
- A block that adds to a file workers import (``# team.py, continued``): the README says to
  restart them, and the test does, with the same command lines, waiting for each to answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from celery import Celery

from tests.conftest import own_database
from tests.readme_snippets import (
    Background,
    Command,
    Export,
    PythonCode,
    Skipped,
    Step,
    WriteFile,
    readme_plan,
)
from tests.support import free_port

pytestmark = [pytest.mark.system, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_PORTS = (8765, 5555)
COMMAND_TIMEOUT_S = 180.0
READY_TIMEOUT_S = 60.0
SUBMITTED = re.compile(r"submitted run ([0-9a-f-]{36})")


@dataclass
class Running:
    """A long-running process a README line started, and the log it writes."""

    step: Background
    command: str  # as run, ports substituted
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, cwd: Path) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {self.command}"],
            cwd=cwd,
            env=dict(os.environ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def wait_stopped(self, grace_s: float = 15.0) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def port(self) -> int:
        words = self.command.split()
        return int(words[words.index("--port") + 1])

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class ReadmeSession:
    """One user's way through the README: a shell (its exported variables), one Python session,
    and the processes started in the background."""

    def __init__(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, database_url: str
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self._monkeypatch = monkeypatch
        self._servers = {"AGENTYARD_REDIS_URL": redis_url, "AGENTYARD_DATABASE_URL": database_url}
        self.ports = {port: free_port() for port in README_PORTS}
        self.namespace: dict[str, Any] = {"__name__": "__readme__"}
        self.running: list[Running] = []
        self._starting: list[Running] = []
        self._answering_before: set[str] = set()
        self._app: Celery | None = None
        self.latest_run: str | None = None
        self._dead_letter: str | None = None

    # -- one step at a time ------------------------------------------------------------------

    def do(self, step: Step) -> None:
        if not isinstance(step, Background):
            self._await_started()
        if isinstance(step, Skipped):
            return  # its marker says why
        if isinstance(step, Export):
            self._export(step)
        elif isinstance(step, Background):
            self._start(step)
        elif isinstance(step, Command):
            self._command(step)
        elif isinstance(step, PythonCode):
            self._python(step)
        elif isinstance(step, WriteFile):
            self._write(step)

    def finish(self) -> None:
        self._await_started()

    def _export(self, step: Export) -> None:
        value = self._servers.get(step.name, self._ports_in(step.value))
        self._monkeypatch.setenv(step.name, value)

    def _start(self, step: Background) -> None:
        running = Running(
            step,
            self._ports_in(step.command),
            self.logs / f"line{step.line}.log",
        )
        self._launch([running])

    def _launch(self, processes: list[Running]) -> None:
        if any(p.step.kind == "worker" for p in processes) and not self._starting:
            self._answering_before = self._answering()
        for running in processes:
            running.start(self.workdir)
            self.running.append(running)
            self._starting.append(running)

    def _await_started(self) -> None:
        """Wait until every process started since the last wait answers: a worker a ping, Flower
        and the stub an HTTP request."""
        if not self._starting:
            return
        starting, self._starting = self._starting, []
        workers = [p for p in starting if p.step.kind == "worker"]
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = list(starting)
        while waiting:
            for running in waiting:
                if not running.alive():
                    pytest.fail(
                        f"README.md line {running.step.line}: `{running.command}` exited "
                        f"early; its log ends:\n{running.tail()}",
                        pytrace=False,
                    )
            new_workers = self._answering() - self._answering_before if workers else set()
            waiting = [
                p
                for p in waiting
                if not (
                    (p.step.kind == "worker" and len(new_workers) >= len(workers))
                    or (p.step.kind != "worker" and _answers_http(p))
                )
            ]
            if waiting and time.monotonic() > deadline:
                logs = "\n\n".join(f"{p.command}:\n{p.tail()}" for p in waiting)
                pytest.fail(
                    f"not answering after {READY_TIMEOUT_S:.0f}s (workers answering: "
                    f"{sorted(new_workers)}):\n{logs}",
                    pytrace=False,
                )

    def _answering(self) -> set[str]:
        """The names of the workers that answer a ping on the team's broker."""
        if self._app is None:
            from storage.settings import Settings
            from workers.celery_app import make_celery

            self._app = make_celery("readme", Settings())
        replies = self._app.control.ping(timeout=0.5) or []
        return {name for reply in replies for name in reply}

    def _command(self, step: Command) -> None:
        command = self._ports_in(self._placeholders_in(step.command, step.line))
        cwd = self.workdir
        if command.startswith("make "):
            venv = Path(sys.prefix)
            command = command.replace(
                "make ",
                f"make -C {ROOT} VENV={venv} -o {venv / '.installed-stamp'} ",
                1,
            )
            cwd = ROOT
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        if done.returncode != step.exit_code:
            pytest.fail(
                f"README.md line {step.line}: `{command}` exited {done.returncode}, not "
                f"{step.exit_code}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}",
                pytrace=False,
            )
        if found := SUBMITTED.search(done.stdout):
            self.latest_run = found[1]

    def _python(self, step: PythonCode) -> None:
        code = compile(self._ports_in(step.code), f"README.md, block at line {step.line}", "exec")
        raised = None
        try:
            exec(code, self.namespace)
        except Exception:
            raised = traceback.format_exc()
        if raised is not None:
            pytest.fail(
                f"README.md line {step.line}: the Python block raised\n{raised}", pytrace=False
            )
        run = self.namespace.get("run")
        if run is not None and getattr(run, "id", None):
            self.latest_run = run.id

    def _write(self, step: WriteFile) -> None:
        path = self.workdir / step.path
        if step.append:
            assert path.exists(), (
                f"README.md line {step.line}: adds to {step.path}, not written yet"
            )
            path.write_text(path.read_text() + "\n\n" + step.code)
        else:
            path.write_text(step.code)
        module = step.path.removesuffix(".py").replace("/", ".")
        importing = [p for p in self.running if p.step.kind == "worker" and p.step.module == module]
        if importing:
            self._restart(importing)

    def _restart(self, processes: list[Running]) -> None:
        for running in processes:
            running.signal(signal.SIGTERM)
        for running in processes:
            running.wait_stopped()
            self.running.remove(running)
        self._launch([Running(p.step, p.command, p.log_path) for p in processes])
        self._await_started()

    # -- substitutions -------------------------------------------------------------------------

    def _ports_in(self, text: str) -> str:
        for readme_port, port in self.ports.items():
            text = re.sub(rf"\b{readme_port}\b", str(port), text)
        return text

    def _placeholders_in(self, command: str, line: int) -> str:
        if re.search(r"\bRUN_ID\b", command):
            assert self.latest_run, f"README.md line {line} names RUN_ID before any run was made"
            command = re.sub(r"\bRUN_ID\b", self.latest_run, command)
        if re.search(r"\bID\b", command):
            command = re.sub(r"\bID\b", self._a_dead_letter(line), command)
        return command

    def _a_dead_letter(self, line: int) -> str:
        """A dead letter: a notification to the researcher, which has no handler."""
        if self._dead_letter is not None:
            return self._dead_letter
        from bus.dead_letters import DeadLetters
        from bus.envelope import AgentMessage, MessageType

        orc = self.namespace.get("orc")
        assert orc is not None, f"README.md line {line} needs a dead letter, and no `orc` yet"
        notice = orc.bus.publish(
            AgentMessage(
                type=MessageType.NOTIFICATION,
                sender="writer",
                to="researcher",
                payload={"made_by": "the README test"},
            )
        )
        letters = DeadLetters(orc.database_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = [d for d in letters.latest(20) if d.message_id == notice.message_id]
            if found:
                self._dead_letter = found[0].id
                return found[0].id
            time.sleep(0.1)
        pytest.fail("the researcher's worker did not dead-letter a message it has no handler for")

    # -- the end -------------------------------------------------------------------------------

    def stop(self) -> None:
        for running in self.running:
            running.signal(signal.SIGTERM)
        for running in self.running:
            running.wait_stopped()
        orc = self.namespace.get("orc")
        if orc is not None:
            orc.close()
        if self._app is not None:
            self._app.close()

    def stub(self) -> Running:
        return next(p for p in self.running if p.step.kind == "stub")


def _answers_http(running: Running) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{running.port()}/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if only to say no
    except OSError:
        time.sleep(0.1)  # not listening yet: poll again
        return False


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own (the session's is shared), dropped afterwards."""
    with own_database("agentyard_readme_") as url:
        yield url


@pytest.fixture
def session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_server_url: str,
    key_prefix: str,
    database: str,
) -> Iterator[ReadmeSession]:
    """A user's shell and Python session in a directory of their own, with this test's Redis key
    prefix and database, and nothing of the outer environment's AGENTYARD_* settings."""
    workdir = tmp_path / "user"
    workdir.mkdir()
    for name in list(os.environ):
        is_setting = name.startswith("AGENTYARD_") and not name.startswith("AGENTYARD_TEST_")
        if is_setting or name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "FLOWER_BASIC_AUTH"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTYARD_REDIS_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("AGENTYARD_HOME", str(workdir / ".agentyard"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    readme = ReadmeSession(workdir, monkeypatch, redis_server_url, database)
    try:
        yield readme
    finally:
        readme.stop()
        for module in [m for m in sys.modules if m == "team" or m.startswith("team.")]:
            del sys.modules[module]


def test_every_snippet_of_the_readme_runs_against_real_workers(session: ReadmeSession) -> None:
    # Given the README's blocks, read now
    steps = readme_plan(README)

    # When each one is run, written or skipped, top to bottom
    for step in steps:
        session.do(step)
    session.finish()

    # Then every block ran (the test failed at the first that did not), and what the README
    # says its blocks give is so: the run succeeded, with the researcher's calls answered by the
    # stub through the real SDK, its script's entries each answering a call; the broadcast
    # reached both subscribers, and the writer's handler, in a worker that imports the team
    # module, kept what it received.
    assert session.namespace["result"].status == "succeeded", session.namespace["result"]
    stats = _get_json(f"http://127.0.0.1:{session.stub().port()}/_stub/stats")
    assert stats["by_status"].get("200", 0) >= 1, stats
    assert stats["by_status"].get("429") == 1 and stats["scripted_left"] == 0, stats
    assert session.namespace["published"].recipients == ("reviewer", "writer")
    kept = session.workdir / "sources.jsonl"
    deadline = time.monotonic() + 30
    while not kept.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kept.exists(), "the writer's handler did not run in its worker"
    assert json.loads(kept.read_text().splitlines()[0]) == {"sources": ["..."]}
