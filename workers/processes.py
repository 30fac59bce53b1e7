"""Worker processes started from Python: for the demo, the system tests and the benchmarks.

Each is a real ``agentyard worker`` (a real ``celery worker``) in its own process group, so that
stopping it stops its pool children too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from celery import Celery


class WorkerProcess:
    def __init__(
        self,
        team: str,
        *args: str,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = [sys.executable, "-m", "orchestration.cli", "worker", team, *args]
        self._env = {**os.environ, **(env or {})}
        self._log_path = log_path
        self._cwd = cwd
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> WorkerProcess:
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self._log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            self.argv,
            env=self._env,
            cwd=self._cwd,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: what a pod eviction without grace looks like."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self._close_log()

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (Celery's warm shutdown: running tasks finish), SIGKILL after ``grace_s``."""
        if self.alive():
            self._signal(signal.SIGTERM)
            assert self.process is not None
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_for_workers(
    app: Celery, count: int, timeout_s: float = 60.0, processes: list[WorkerProcess] | None = None
) -> None:
    """Block until ``count`` workers answer a ping; fail early if one of ``processes`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes or []:
            if not process.alive():
                raise RuntimeError(f"worker exited early: {' '.join(process.argv[3:])}")
        replies = app.control.ping(timeout=0.5) or []
        if len(replies) >= count:
            return
    raise TimeoutError(f"fewer than {count} workers answered within {timeout_s}s")
