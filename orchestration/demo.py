"""``agentyard demo``: the example team, end to end, on real workers, with no server installed.

Redis: the one named by AGENTYARD_REDIS_URL, else an embedded redis-server child process.
Database: AGENTYARD_DATABASE_URL, else SQLite under .agentyard/. Two real worker processes (the
agents, and the coordinator with the periodic sweep) run the workflow; the demo follows it.
"""

from __future__ import annotations

import contextlib
import os
import time

from orchestration.report import ProgressPrinter, format_result
from storage.embedded import EmbeddedRedis
from storage.settings import Settings
from storage.url_checks import without_password
from workers.logging import configure_logging
from workers.processes import WorkerProcess, wait_for_workers


def run_demo(team: str, workflow: str, topic: str) -> int:
    settings = Settings()
    with contextlib.ExitStack() as stack:
        if not settings.redis_url:
            redis = stack.enter_context(EmbeddedRedis())
            # Children (the workers) and this process's Settings read both from the environment:
            # the embedded Redis and the embedded database go together.
            os.environ["AGENTYARD_REDIS_URL"] = redis.url
            os.environ["AGENTYARD_DATABASE_URL"] = settings.effective_database_url
            print(
                f"embedded redis-server on {redis.url} (set AGENTYARD_REDIS_URL and "
                "AGENTYARD_DATABASE_URL to use yours)"
            )
        settings = Settings()
        print(f"database {without_password(settings.effective_database_url)}")

        from orchestration.loader import load_orchestrator

        orc = load_orchestrator(team)
        # The workers log to their files; this process speaks through the progress lines only.
        configure_logging(settings.model_copy(update={"log_level": "WARNING"}), force=True)
        orc.ensure_ready()
        logs = settings.home / "logs"
        agents = WorkerProcess(
            team,
            "--all-agents",
            "--concurrency",
            "4",
            "--name",
            "demo-agents",
            log_path=logs / "agents.log",
        )
        coordinator = WorkerProcess(
            team,
            "--coordinator",
            "--concurrency",
            "2",
            "--name",
            "demo-coordinator",
            log_path=logs / "coordinator.log",
        )
        for process in (agents, coordinator):
            stack.enter_context(process)
        print(f"started 2 worker processes (logs in {logs}/); waiting for them to answer...")
        wait_for_workers(orc.celery, 2, processes=[agents, coordinator])

        started = time.monotonic()
        run = orc.submit(workflow, topic, priority=5)
        print(f"\nsubmitted run {run.id}: workflow {workflow!r} on {topic!r}")
        result = run.wait(timeout=300, on_progress=ProgressPrinter())
        print(f"\nfinished in {time.monotonic() - started:.2f}s\n")
        print(format_result(result))
        print(
            f"\nlook again with: agentyard status {run.id}\n"
            f"            as a tree: agentyard trace {run.id}\n"
            f"           as a graph: agentyard graph {run.id} --format mermaid"
        )
        return 0 if result.status.value == "succeeded" else 1
