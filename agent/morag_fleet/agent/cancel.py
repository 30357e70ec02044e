"""An operator's cancel of one job, wherever the job is on this agent.

The runner decides the outcome (see `ActiveJob.close_cancel_window`): a cancel accepted before
the result is spooled makes the job fail with the operator's reason, through the same one spool
and delivery path every job takes, so MoRAG hears about it exactly once. A job claimed but not yet
taken by a slot keeps its cancel here until a slot takes it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from morag_fleet.agent.journal import ACTIVE_PHASES, DELIVERED, SPOOLED, Journal
from morag_fleet.agent.runner import CANCELLING, DEFAULT_CANCEL_GRACE, TOO_LATE, ActiveJob

MAX_GRACE = 300.0
NOT_HERE, FINISHED = "not_here", "finished"


@dataclass(frozen=True)
class CancelAnswer:
    """What the agent tells the controller about one cancel request."""

    job_id: str
    outcome: str  # CANCELLING | TOO_LATE | FINISHED | NOT_HERE
    detail: str

    def fields(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "outcome": self.outcome, "detail": self.detail}


class CancelDesk:
    """Shared by the telemetry thread (requests) and the slot threads (`attach`)."""

    def __init__(self, active: dict[str, ActiveJob], journal: Journal) -> None:
        self._active = active
        self._journal = journal
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[str | None, float]] = {}

    def request(self, job_id: Any, note: Any, grace: Any) -> CancelAnswer:
        if not isinstance(job_id, str) or not job_id:
            return CancelAnswer(str(job_id), NOT_HERE, "no job id in the cancel request")
        note = note.strip() if isinstance(note, str) and note.strip() else None
        grace = _grace(grace)
        with self._lock:
            active = self._active.get(job_id)
            if active is not None:
                return self._answer_active(active, note, grace)
            entry = self._journal.get(job_id)
            if entry is not None and entry.phase in ACTIVE_PHASES:
                self._waiting[job_id] = (note, grace)
                self._journal.record_cancel(job_id, note)
                return CancelAnswer(job_id, CANCELLING, "claimed, not started yet: it will not "
                                    "start and is reported failed")
        if entry is None:
            return CancelAnswer(job_id, NOT_HERE, "this agent does not hold the job")
        if entry.phase == SPOOLED:
            return CancelAnswer(job_id, TOO_LATE, "the job has its result already; it is "
                                "waiting in the outbox and will be reported as it ended")
        if entry.phase == DELIVERED:
            return CancelAnswer(job_id, FINISHED, "the job ended and was reported already")
        return CancelAnswer(job_id, NOT_HERE, f"the job is {entry.phase} on this agent")

    def _answer_active(self, active: ActiveJob, note: str | None, grace: float) -> CancelAnswer:
        phase = active.phase
        outcome = active.request_cancel(note, grace)
        job_id = active.job.job_id
        if outcome == TOO_LATE:
            return CancelAnswer(job_id, TOO_LATE, "the result is being delivered already; the "
                                "job is reported as it ended")
        self._journal.record_cancel(job_id, active.cancel_note)
        if phase == "converting":
            how = f"its slot is stopped (SIGTERM, SIGKILL after {grace:g} s)"
        else:  # a download is not cut off; nothing is converted after it
            how = "it stops before converting"
        return CancelAnswer(job_id, CANCELLING, f"the job was {phase}; {how} and it is "
                            "reported failed")

    def attach(self, active: ActiveJob) -> None:
        """A slot takes a job: register it, and apply a cancel that came while it waited."""
        with self._lock:
            self._active[active.job.job_id] = active
            waiting = self._waiting.pop(active.job.job_id, None)
        if waiting is not None:
            active.request_cancel(*waiting)


def _grace(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        return DEFAULT_CANCEL_GRACE
    return min(float(value), MAX_GRACE)
