"""One row per job in the controller's history, kept up to date from the job events.

Why a row and not only the events: the pages list and filter jobs (state, content type, agent,
age) and group failures; scanning every event for that would grow with the history. The row is
written in the same transaction as the event that changes it, so both survive a restart
together. A later claim of the job (by any agent: a lease ran out) starts the row afresh; events
from an agent that no longer holds the job do not overwrite the current holder's row.
"""

from __future__ import annotations

import math
from typing import Any

from morag_fleet.controller.reasons import reason_class
from morag_fleet.wire.schema import PHASE_SECONDS_FIELDS

TERMINAL_STATES = ("completed", "failed", "result_refused", "result_discarded")
FAILED_STATES = ("failed",)
# events that say something about a job without changing its state (they stay in the timeline)
NO_STATE_EVENTS = ("slot_recycled",)

PROGRESS_STEP = 0.25
MAX_TRACKED = 100_000
JOB_COLUMNS = ("job_id", "agent", "content_type", "state", "claimed", "updated", "finished",
               "progress", "error", "reason", *PHASE_SECONDS_FIELDS, "duration_s")

# a claim starts the row afresh; any other event fills in what it knows and keeps the rest
_SETS = ", ".join(
    ["agent = excluded.agent", "state = excluded.state",
     "updated = max(excluded.updated, jobs.updated)"]
    + [f"{c} = CASE WHEN excluded.state = 'claimed' THEN excluded.{c} "
       f"ELSE coalesce(excluded.{c}, jobs.{c}) END" for c in JOB_COLUMNS[4:] if c != "updated"])
JOB_UPSERT = (
    f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in JOB_COLUMNS)}) "
    f"ON CONFLICT(job_id) DO UPDATE SET {_SETS} "
    "WHERE excluded.state = 'claimed' OR jobs.agent = excluded.agent")


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else None


def _text(value: Any, limit: int = 2000) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def job_row(agent: str, ts: float, body: dict[str, Any]) -> tuple[Any, ...] | None:
    """The row values one job event writes (None for events that change no row)."""
    if body.get("scope") != "job" or body.get("name") in NO_STATE_EVENTS:
        return None
    job_id, state = body.get("job_id"), str(body.get("name"))
    if not isinstance(job_id, str):
        return None
    terminal = state in TERMINAL_STATES
    error = _text(body.get("error")) if state in (*TERMINAL_STATES, "spooled") else None
    failed = state in FAILED_STATES
    values = {
        "job_id": job_id, "agent": agent, "content_type": _text(body.get("content_type"), 200),
        "state": state, "claimed": ts if state == "claimed" else None, "updated": ts,
        "finished": ts if terminal else None, "progress": _number(body.get("progress")),
        "error": error, "reason": reason_class(error) if failed else None,
        "duration_s": _number(body.get("duration")) if terminal else None,
    }
    for key in PHASE_SECONDS_FIELDS:
        values[key] = _number(body.get(key))
    return tuple(values[c] for c in JOB_COLUMNS)


class ProgressSteps:
    """Which progress-only events are worth a row update: one per PROGRESS_STEP of progress.

    Why: a converting job reports its progress every second, so progress events outnumber all
    others by far, and writing each to the row doubled the cost of committing them. The event
    itself is always kept (the timeline shows the last progress); the row lags by less than a
    step, and live progress is in the agents' heartbeats anyway."""

    def __init__(self) -> None:
        self._written: dict[str, float] = {}

    def wanted(self, body: dict[str, Any]) -> bool:
        job_id, progress = body.get("job_id"), _number(body.get("progress"))
        if not isinstance(job_id, str):
            return True
        if body.get("name") != "converting" or progress is None:
            if body.get("name") in TERMINAL_STATES:
                self._written.pop(job_id, None)
            return True
        last = self._written.get(job_id)
        if last is not None and abs(progress - last) < PROGRESS_STEP and progress < 1.0:
            return False
        if len(self._written) >= MAX_TRACKED:  # jobs whose end never came (agent gone)
            self._written.clear()
        self._written[job_id] = progress
        return True


def row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    data = dict(zip(JOB_COLUMNS, row, strict=True))
    data["active"] = data["state"] not in TERMINAL_STATES
    return data
