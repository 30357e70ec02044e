"""Operator actions (drain, resume, cancel) as plain functions of the controller.

Every way an operator acts goes through these: the control socket's handlers call them, and so
does anything else that writes (a web page posts to the control socket, which runs them on the
controller's loop thread, the only thread that may use the agents' socket). They check what can be
checked here and give a clear answer; the agent then says what it did in an event that the
history records.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from morag_fleet.controller.control import ControlError
from morag_fleet.controller.text import clean

if TYPE_CHECKING:
    from morag_fleet.controller.server import Controller

MAX_NOTE_LEN = 500
MAX_GRACE = 300.0
# phases in which the job's result exists already: a cancel would come too late
DELIVERING_PHASES = ("spooled", "submitting", "submitted")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ActionError(ControlError):
    """The action cannot be done; the text says why and what to do."""


def parse_until(value: Any, now: float | None = None) -> float | None:
    """When a drain ends, as epoch seconds: None, an epoch number, a duration ("90m", "2h",
    "1d"), or a local clock time ("14:00", the next time the clock shows it)."""
    now = time.time() if now is None else now
    if value is None or value == "":
        return None
    if type(value) in (int, float):
        if not math.isfinite(value) or value <= now:
            raise ActionError("--until must be in the future")
        return float(value)
    if not isinstance(value, str):
        raise ActionError("--until must be a time (14:00) or a duration (2h, 90m)")
    if match := _DURATION.match(value):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        if seconds <= 0:
            raise ActionError("--until must be in the future")
        return now + seconds
    if match := _CLOCK.match(value):
        hour, minute = int(match[1]), int(match[2])
        if hour > 23 or minute > 59:
            raise ActionError(f"--until {value!r} is not a time of day")
        current = datetime.fromtimestamp(now)
        target = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if target.timestamp() <= now:
            target += timedelta(days=1)
        return target.timestamp()
    raise ActionError(f"--until {value!r}: use a time of day (14:00) or a duration "
                      "(30m, 2h, 1d)")


def clean_note(note: Any) -> str | None:
    if note is None or note == "":
        return None
    if not isinstance(note, str):
        raise ActionError("the note must be text")
    note = clean(note.strip())
    if len(note) > MAX_NOTE_LEN:
        raise ActionError(f"the note is longer than {MAX_NOTE_LEN} characters")
    return note or None


def drain(controller: Controller, agent: Any, note: Any = None, until: Any = None
          ) -> dict[str, Any]:
    """Stop an agent's claims (its running jobs finish), with an optional note and time to
    resume; the agent resumes by itself at that time."""
    note, until_ts = clean_note(note), parse_until(until)
    controller.command(agent, "drain", {"note": note, "until": until_ts})
    return {"agent": agent, "command": "drain", "sent": True, "note": note, "until": until_ts}


def resume(controller: Controller, agent: Any) -> dict[str, Any]:
    controller.command(agent, "resume", {})
    return {"agent": agent, "command": "resume", "sent": True}


def cancel(controller: Controller, job_id: Any, note: Any = None, grace: Any = None
           ) -> dict[str, Any]:
    """Send a cancel to the agent running the job. Refused with the reason when no online agent
    runs it, or when its result is being delivered already."""
    if not isinstance(job_id, str) or not job_id:
        raise ActionError("cancel needs a job id")
    note = clean_note(note)
    if grace is not None and (type(grace) not in (int, float) or not math.isfinite(grace)
                              or not 0 <= grace <= MAX_GRACE):
        raise ActionError(f"the grace period must be 0..{MAX_GRACE:g} seconds")
    holder, job = _running(controller, job_id)
    if holder is None or job is None:
        raise ActionError(_not_running(controller, job_id))
    phase = job.get("phase") or "claimed"
    if phase in DELIVERING_PHASES:
        raise ActionError(f"job {job_id} has its result already and it is being delivered by "
                          f"{holder}; too late to cancel, it is reported as it ended")
    controller.command(holder, "cancel", {"job_id": job_id, "note": note, "grace": grace},
                       {"job_id": job_id, "note": note})
    assert controller.store is not None
    return {"job_id": job_id, "agent": holder, "phase": phase, "sent": True, "note": note,
            "after": controller.store.last_event_id()}


def _running(controller: Controller, job_id: str) -> tuple[str | None, dict[str, Any] | None]:
    for record in controller.state.agents.values():
        if record.link == "online" and job_id in record.jobs:
            return record.name, record.jobs[job_id]
    return None, None


def _not_running(controller: Controller, job_id: str) -> str:
    """Why a job cannot be cancelled, from the history: it ended, its agent is gone, or it was
    never seen."""
    job = controller.history.job(job_id) if controller.history is not None else None
    if job is None:
        return f"no agent runs job {job_id} (the controller has not seen it)"
    if job["state"] in ("completed", "failed", "result_refused", "result_discarded"):
        reason = f": {job['error']}" if job.get("error") else ""
        return f"job {job_id} ended already ({job['state']}{reason}) on {job['agent']}"
    record = controller.state.agents.get(job["agent"])
    status = record.status if record is not None else "unknown"
    if job["state"] in DELIVERING_PHASES and record is not None and record.link == "online":
        return (f"job {job_id} has its result already and it is being delivered by "
                f"{job['agent']}; too late to cancel, it is reported as it ended")
    return (f"job {job_id} was last seen {job['state']} on {job['agent']}, which is {status} "
            "now; the cancel cannot reach it")
