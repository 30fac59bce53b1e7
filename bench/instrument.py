"""Worker-side counters for ``bench/overhead.py --instrument``: where a task's time goes.

Installed by bench/overhead_team.py when ``BENCH_INSTRUMENT`` is set (never otherwise). Per task
name it counts: tasks, wall time, the thread's CPU time, SQL statements by verb and their wall
time, commits, and broker publishes (send_task / apply_async) and their wall time. The driver
resets and collects the counters through two remote-control commands.

Statements are counted where every one of them ends up, psycopg's ``Cursor.execute`` and
``executemany`` (agentyard's hot path runs them there directly, the rest through SQLAlchemy), and
commits at ``Connection.commit`` plus each statement run in autocommit mode; pool checkouts come
from SQLAlchemy's pool events, publishes from Celery's signals. Nothing in agentyard's code is
patched.
"""

from __future__ import annotations

import cProfile
import functools
import os
import pstats
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
from celery import signals
from celery.worker.control import control_command
from sqlalchemy import event
from sqlalchemy.engine import Engine

_lock = threading.Lock()
_local = threading.local()
_counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
# BENCH_CPROFILE=1: every task body runs under cProfile with the thread's CPU clock as timer;
# the dump command writes one .pstats file per task name into the BENCH_INSTRUMENT directory.
_PROFILE = bool(os.environ.get("BENCH_CPROFILE"))
_profiles: dict[str, list[cProfile.Profile]] = defaultdict(list)


def _task() -> str:
    return getattr(_local, "task", None) or "(outside a task)"


def _add(task: str, **values: float) -> None:
    with _lock:
        row = _counts[task]
        for key, value in values.items():
            row[key] += value


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(cursor, query, *args, **kwargs)
        finally:
            verb = str(query).lstrip().split(None, 1)[0].lower()
            autocommit = 1 if cursor.connection.autocommit else 0
            _add(
                _task(),
                **{"sql": 1, f"sql_{verb}": 1, "commits": autocommit},
                sql_ms=(time.perf_counter() - started) * 1000,
            )

    return run


def _counted_commit(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def commit(connection: Any) -> Any:
        _add(_task(), commits=1)
        return method(connection)

    return commit


def install(orc: Any) -> None:
    psycopg.Cursor.execute = _counted(psycopg.Cursor.execute)  # type: ignore[method-assign]
    psycopg.Cursor.executemany = _counted(psycopg.Cursor.executemany)  # type: ignore[method-assign]
    psycopg.Connection.commit = _counted_commit(psycopg.Connection.commit)  # type: ignore[method-assign]

    @event.listens_for(Engine, "checkout")
    def _checkout(*args: Any) -> None:
        _add(_task(), pool_checkouts=1)

    @signals.before_task_publish.connect(weak=False)
    def _before_publish(**_: Any) -> None:
        _local.publish_t = time.perf_counter()

    @signals.after_task_publish.connect(weak=False)
    def _after_publish(**_: Any) -> None:
        started = getattr(_local, "publish_t", None)
        if started is not None:
            _add(_task(), publishes=1, publish_ms=(time.perf_counter() - started) * 1000)

    @signals.task_prerun.connect(weak=False)
    def _prerun(task: Any = None, **_: Any) -> None:
        _local.task = task.name if task is not None else "?"
        if _PROFILE:
            _local.profile = cProfile.Profile(time.thread_time)
            _local.profile.enable()
        _local.t = (time.perf_counter(), time.thread_time())

    @signals.task_postrun.connect(weak=False)
    def _postrun(task: Any = None, **_: Any) -> None:
        wall, cpu = _local.t
        if _PROFILE:
            _local.profile.disable()
            with _lock:
                _profiles[_task()].append(_local.profile)
        _add(
            _task(),
            tasks=1,
            task_ms=(time.perf_counter() - wall) * 1000,
            task_cpu_ms=(time.thread_time() - cpu) * 1000,
        )
        _local.task = None

    @control_command()  # type: ignore[misc]
    def bench_instrument_reset(state: Any, **_: Any) -> dict[str, Any]:
        with _lock:
            _counts.clear()
            _profiles.clear()
        return {"ok": True, "pid": os.getpid()}

    @control_command()  # type: ignore[misc]
    def bench_instrument_dump(state: Any, phase: str = "phase", **_: Any) -> dict[str, Any]:
        with _lock:
            data = {task: dict(row) for task, row in _counts.items()}
            profiles = {task: list(ps) for task, ps in _profiles.items()}
        directory = os.environ.get("BENCH_INSTRUMENT", ".")
        for task, ps in profiles.items():
            if ps:
                stats = pstats.Stats(ps[0])
                for more in ps[1:]:
                    stats.add(more)
                stats.dump_stats(
                    os.path.join(directory, f"cprofile-{phase}-{task}-{os.getpid()}.pstats")
                )
        return {"pid": os.getpid(), "cpu_s": time.process_time(), "counts": data}


def merge(dumps: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the workers' counters; per task name, averages per task."""
    total: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for dump in dumps:
        for task, row in dump.get("counts", {}).items():
            for key, value in row.items():
                total[task][key] += value
    out: dict[str, Any] = {}
    for task, row in sorted(total.items()):
        n = row.get("tasks") or 1
        out[task] = {
            "tasks": int(row.get("tasks", 0)),
            **{f"{k}_per_task": round(v / n, 3) for k, v in sorted(row.items()) if k != "tasks"},
        }
    return out
