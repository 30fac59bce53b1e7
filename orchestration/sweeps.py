"""The sweeps that keep workflows moving, run in every coordinator process, each by one at a time.

Recovery needs no singleton. Every coordinator worker runs one thread per job; every job's period
the thread takes or keeps the job's lease (``storage.lease_store``) and, while it holds it, does
the job. The jobs are the maintenance sweep (idle workflows, expired leases, lost requests, due
retries, overdue runs: ``maintenance.py``) and the sweep of overdue acknowledgements
(``bus/ack_sweeper.py``). A holder that dies stops renewing: its lease runs out after
``AGENTYARD_SWEEP_LEASE_S`` and the next coordinator to look takes the job over. One that stops
gives its leases up, and another takes over at its next look. ``agentyard beat`` may still send
the same jobs as periodic tasks; they go through the same leases.

With no shared Redis configured there are no leases, and every coordinator does every job:
harmless, since each change a sweep makes is a compare-and-set (only the work is repeated).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from storage.lease_store import LeaseStore, process_id

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A sweep: its name (that of its lease), its period, and the work."""

    name: str
    every_s: float
    run: Callable[[], object]


class Sweeps:
    def __init__(
        self,
        jobs: list[Job],
        leases: LeaseStore | None,
        lease_s: float,
        holder: str | None = None,
    ) -> None:
        """``leases`` None: no shared Redis, every process does every job. ``holder``: this
        process's id (one is made that no other process shares)."""
        self._jobs = {job.name: job for job in jobs}
        self._leases = leases
        self._lease_s = lease_s
        self.holder = holder or process_id()
        self._fences: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def lease_s(self, job: Job) -> float:
        """How long a holding of ``job``'s lease lasts: long enough to be renewed twice over."""
        return max(self._lease_s, 2 * job.every_s + 1)

    def run_due(self, name: str) -> bool:
        """Do job ``name`` now if this process holds its lease (or takes it); True if it did."""
        job = self._jobs[name]
        if not self._holds(job):
            return False
        try:
            job.run()
        except Exception as exc:  # a failing sweep is logged; the next period tries again
            log.warning("sweep.failed", job=name, error=str(exc), error_type=type(exc).__name__)
        return True

    def _holds(self, job: Job) -> bool:
        if self._leases is None:
            return True
        try:
            holding = self._leases.hold(job.name, self.holder, self.lease_s(job))
        except Exception as exc:  # Redis unreachable: nothing to dispatch with either; wait
            log.warning("sweep.lease_unavailable", job=job.name, error=str(exc))
            return False
        with self._lock:
            before = self._fences.get(job.name)
            self._fences[job.name] = holding.fence
        if holding.held and holding.fence != before:
            log.info("sweep.lease_taken", job=job.name, fence=holding.fence, holder=self.holder)
        elif not holding.held and before is not None:
            log.warning("sweep.lease_lost", job=job.name, holder=holding.holder)
        return holding.held

    def start(self) -> None:
        """Run every job on its own daemon thread until ``stop``. Idempotent."""
        with self._lock:
            if self._threads:
                return
            self._stop.clear()
            self._threads = [
                threading.Thread(
                    target=self._loop, args=(job,), name=f"agentyard-sweep-{job.name}", daemon=True
                )
                for job in self._jobs.values()
            ]
            threads = list(self._threads)
        for thread in threads:
            thread.start()
        log.info("sweeps.started", jobs=sorted(self._jobs), holder=self.holder)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the threads, and give up the leases this process holds (another coordinator
        takes the jobs over at its next look, without waiting for them to run out)."""
        self._stop.set()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout_s)
        if self._leases is None:
            return
        for name in self._jobs:
            try:
                if self._leases.release(name, self.holder):
                    log.info("sweep.lease_released", job=name)
            except Exception as exc:  # it runs out by itself
                log.warning("sweep.release_failed", job=name, error=str(exc))

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _loop(self, job: Job) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.run_due(job.name)
            # Keep the period whatever the job took; a job slower than its period runs back to back.
            next_at = max(next_at + job.every_s, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))
