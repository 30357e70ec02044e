"""Delivering spooled results: exactly once as far as the server can tell.

Why ask before resubmitting: MoRAG's PUT /result runs ingestion synchronously, so a timeout does
not mean it failed, and a second submission re-runs ingestion (a later failure can even overwrite
a completed job). After any unclear attempt we ask the job's status first; a result found in the
outbox at start is unclear too, since the previous run may have died between the PUT and
recording it (or a power cut may have lost that record).

Why a refused or discarded result is not a success: a server that leases jobs gives a job whose
lease ran out to another worker, and then hears only that worker (409 for us). A result the
server answers 200 for but did not keep (its answer names another outcome) is discarded. Both are
logged and counted as such, never retried: the job is someone else's now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from morag_fleet.agent.journal import SPOOLED, Journal, JournalEntry
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.errors import (
    ApiConflict,
    ApiError,
    ApiNotFound,
    ApiProtocolError,
    ApiUnavailable,
)
from morag_fleet.jobs.models import JobResult
from morag_fleet.log import get_logger

log = get_logger(__name__)
FINAL_STATES = ("completed", "failed")


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool  # nothing more to do for this job (accepted, already there, or dropped)
    note: str
    dropped: bool = False  # the server no longer wanted it (gone, or another worker's now)
    refused: bool = False  # 409: the job is not ours any more (lease lapsed, another holder)
    discarded: bool = False  # accepted with 200, but the server kept another outcome

    @property
    def kept(self) -> bool:
        """The server has this result as the job's outcome."""
        return self.delivered and not self.dropped


# The one notice that a job is finished: told once per job, when its delivery ends, by whichever
# thread delivered it (a delivery thread right after the job, or the outbox thread later).
OnFinal = Callable[[JournalEntry, DeliveryOutcome], None]


class Deliverer:
    """Submits spooled results; one at a time per job (the runner and outbox thread share it)."""

    def __init__(self, client: MoragClient, journal: Journal,
                 on_final: OnFinal | None = None) -> None:
        self._client = client
        self._on_final = on_final
        self._journal = journal
        self._retry = client.retry  # layer 4 of the policy: no limit on tries, capped waits
        self._busy: set[str] = set()
        self._unclear: set[str] = set()
        self._lock = threading.Lock()

    def confirm_before_sending(self, job_ids: list[str]) -> None:
        """These results may already have reached the server: ask before sending them."""
        with self._lock:
            self._unclear.update(job_ids)

    def deliver(self, job_id: str) -> DeliveryOutcome | None:
        """None when another thread is already delivering this job."""
        if not self.reserve(job_id):
            return None
        return self.deliver_reserved(job_id)

    def reserve(self, job_id: str) -> bool:
        """Claims the job's delivery for the caller; False when another thread holds it."""
        with self._lock:
            if job_id in self._busy:
                return False
            self._busy.add(job_id)
            return True

    def deliver_reserved(self, job_id: str) -> DeliveryOutcome:
        """Reads the entry afresh under the reservation: a list of spooled entries taken a moment
        ago may name one that another thread has delivered since."""
        try:
            entry = self._journal.get(job_id)
            if entry is None or entry.phase != SPOOLED or entry.result is None:
                return DeliveryOutcome(True, "already delivered")
            outcome = self._deliver(entry)
            if outcome.delivered and self._on_final is not None:
                self._on_final(entry, outcome)
            return outcome
        finally:
            with self._lock:
                self._busy.discard(job_id)

    def _deliver(self, entry: JournalEntry) -> DeliveryOutcome:
        assert entry.result is not None
        job_id = entry.job_id
        with self._lock:
            unclear = entry.submit_tries > 0 or job_id in self._unclear
            self._unclear.discard(job_id)
        try:
            final = self._already_final(job_id) if unclear else None
            if final is not None:
                return self._finished_elsewhere(entry, final)
            answer = self._client.submit_result(job_id, JobResult.from_json(entry.result))
        except ApiUnavailable as exc:
            delay = self._retry.result_delay(entry.submit_tries)
            self._journal.record_submit_failure(job_id, str(exc), delay)
            log.warning("result_spooled", job_id=job_id, retry_in=round(delay, 1), error=str(exc))
            return DeliveryOutcome(False, f"API unavailable, retry in {delay:.0f} s")
        except ApiConflict as exc:
            self._journal.mark_delivered(job_id)
            log.error("result_refused", job_id=job_id, success=entry.result.get("success"),
                      reason=str(exc))
            return DeliveryOutcome(True, f"refused: {exc}", dropped=True, refused=True)
        except ApiNotFound as exc:
            # The server no longer knows this job: nothing to do.
            self._journal.mark_delivered(job_id)
            log.error("result_dropped", job_id=job_id, reason=str(exc))
            return DeliveryOutcome(True, f"dropped: {exc}", dropped=True)
        except ApiProtocolError as exc:
            delay = max(self._retry.result_delay(entry.submit_tries),
                        self._retry.rejected_result_wait)
            self._journal.record_submit_failure(job_id, str(exc), delay)
            log.error("result_rejected", job_id=job_id, error=str(exc))
            return DeliveryOutcome(False, f"rejected: {exc}")
        self._journal.mark_delivered(job_id)
        status = answer.get("status")
        if status in FINAL_STATES and (status == "completed") != bool(entry.result.get("success")):
            log.error("result_discarded", job_id=job_id, status=status,
                      success=entry.result.get("success"),
                      reason="the server answered 200 but kept another outcome")
            return DeliveryOutcome(True, f"discarded: the job is {status}", dropped=True,
                                   discarded=True)
        log.info("result_submitted", job_id=job_id, status=status,
                 success=entry.result.get("success"), tries=entry.submit_tries + 1)
        return DeliveryOutcome(True, str(status or "submitted"))

    def _already_final(self, job_id: str) -> dict[str, Any] | None:
        """After an unclear attempt: the job's status if it is finished (by our earlier attempt,
        or by another worker), else None."""
        try:
            status = self._client.job_status(job_id)
        except ApiNotFound:
            raise
        except ApiError:
            return None
        return status if status.get("status") in FINAL_STATES else None

    def _finished_elsewhere(self, entry: JournalEntry, status: dict[str, Any]
                            ) -> DeliveryOutcome:
        """The job is final on the server already: our earlier attempt landed, unless the
        server names another worker as the one that finished it."""
        self._journal.mark_delivered(entry.job_id)
        other = status.get("worker_id")
        if other and other != self._client.settings.worker_id:
            log.error("result_refused", job_id=entry.job_id, finished_by=other,
                      reason="another worker finished the job")
            return DeliveryOutcome(True, f"refused: finished by {other}", dropped=True,
                                   refused=True)
        log.info("result_confirmed", job_id=entry.job_id, tries=entry.submit_tries)
        return DeliveryOutcome(True, "server already has the result")


class BackgroundDelivery:
    """Sends spooled results from a few threads of its own, so that a slot takes its next job as
    soon as its result is durable: MoRAG runs ingestion inside the result PUT, seconds in which a
    slot would otherwise sit idle. At most `limit` results are in flight here; a slot that would
    go past that waits, so claims never outrun delivery. What fails stays in the outbox, which
    the agent's outbox thread retries."""

    def __init__(self, deliverer: Deliverer, limit: int) -> None:
        self._deliverer = deliverer
        self._limit = limit
        self._room = threading.BoundedSemaphore(limit)
        self._pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="deliver")

    def submit(self, job_id: str) -> None:
        """Reserved at once, so the outbox thread leaves the job to the pool. Whoever delivers
        it, the deliverer's `on_final` tells the job's end."""
        self._room.acquire()
        if not self._deliverer.reserve(job_id):  # the outbox thread has it already
            self._room.release()
            return
        self._pool.submit(self._deliver, job_id)

    def _deliver(self, job_id: str) -> None:
        try:
            self._deliverer.deliver_reserved(job_id)
        except Exception:  # a bug here must not lose the result: it is still in the outbox
            log.exception("delivery_error", job_id=job_id)
        finally:
            self._room.release()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight (all the room is free again) within `timeout`."""
        deadline = time.monotonic() + timeout
        taken = 0
        try:
            while taken < self._limit:
                if not self._room.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    return False
                taken += 1
            return True
        finally:
            for _ in range(taken):
                self._room.release()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
