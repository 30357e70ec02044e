"""Keeps the leases of every job this agent holds, from claim until its result is accepted.

Why one thread for all jobs, apart from the conversion: a lease lapses whatever the job is
doing, and the slow parts are often not the conversion (a large download, a result waiting in
the outbox while the API is away, MoRAG's ingestion inside the result PUT). A server that leases
jobs hands a lapsed one to another worker, so the job would run twice and one result would be
refused. Each job is renewed at a third of its lease; servers without leases cost nothing here.
"""

from __future__ import annotations

import threading
import time

from morag_fleet.jobs.client import MoragClient
from morag_fleet.log import get_logger

log = get_logger(__name__)
SHARE = 3  # renew when a third of the lease has passed
LONGEST_SLEEP = 1.0  # how often the stop event is looked at, at most


class LeaseKeeper:
    def __init__(self, client: MoragClient, stop: threading.Event) -> None:
        self._client = client
        self._stop = stop
        self._lock = threading.Lock()
        self._due: dict[str, tuple[float, float]] = {}  # job_id -> (next renewal, interval)
        self._wake = threading.Event()

    def hold(self, job_id: str, lease_seconds: float | None) -> None:
        """Renew this job's lease until `release`; a job without a lease is not tracked."""
        if not lease_seconds:
            return
        every = lease_seconds / SHARE
        with self._lock:
            self._due[job_id] = (time.monotonic() + every, every)
        self._wake.set()

    def release(self, job_id: str) -> None:
        with self._lock:
            self._due.pop(job_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._due)

    def run(self) -> None:
        """The keeper thread's loop; ends when `stop` is set."""
        while not self._stop.is_set():
            for job_id in self._take_due():
                self._renew(job_id)
            self._wake.wait(self._sleep())  # a new hold wakes it early
            self._wake.clear()

    def _take_due(self) -> list[str]:
        now = time.monotonic()
        due = []
        with self._lock:
            for job_id, (at, every) in self._due.items():
                if at <= now:
                    due.append(job_id)
                    self._due[job_id] = (now + every, every)
        return due

    def _sleep(self) -> float:
        with self._lock:
            soonest = min((at for at, _ in self._due.values()), default=None)
        if soonest is None:
            return LONGEST_SLEEP
        return max(0.05, min(LONGEST_SLEEP, soonest - time.monotonic()))

    def _renew(self, job_id: str) -> None:
        try:
            if self._client.renew_lease(job_id):
                log.debug("lease_renewed", job_id=job_id)
                return
        except Exception as exc:  # a failed renewal must never fail the job; try next round
            log.warning("lease_renew_failed", job_id=job_id, error=str(exc))
            return
        log.warning("lease_lost", job_id=job_id,
                    reason="the server no longer has this job processing by this worker")
        self.release(job_id)
