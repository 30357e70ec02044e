"""Questions about the past, answered from the controller's SQLite history: jobs with filters, a
job's timeline with the time spent in each phase, failures grouped by reason, an agent's state
changes.

Why its own connection: the pages that ask run on other threads than the controller's loop,
and SQLite in WAL mode lets them read while the loop writes. One lock serialises this
connection's users. Everything returned is plain data (what a JSON page or `--json` prints).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from morag_fleet.controller.jobrows import JOB_COLUMNS, TERMINAL_STATES, row_dict

if TYPE_CHECKING:
    from morag_fleet.controller.server import Controller

MAX_LIMIT = 5000
# a job's phases as (name, the event that starts it, the events that may end it)
PHASES = (("wait", "claimed", ("downloading", "spooled")),
          ("download", "downloading", ("converting", "spooled")),
          ("convert", "converting", ("spooled",)),
          ("deliver", "spooled", TERMINAL_STATES))
# what the agent measured itself, preferred over differences of event times
AGENT_TIMINGS = {"download": "download_s", "convert": "convert_s", "deliver": "deliver_s"}
STATE_EVENTS = ("hello", "bye", "lost", "reconnected", "started", "stopped", "draining",
                "paused", "resumed", "command", "forgotten", "selftest_failed",
                "journal_damaged", "cancel")


class History:
    def __init__(self, path: Path) -> None:
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ---- jobs ------------------------------------------------------------------------------
    def jobs(self, state: str | None = None, content_type: str | None = None,
             agent: str | None = None, max_age_s: float | None = None, limit: int = 200,
             now: float | None = None) -> list[dict[str, Any]]:
        """Jobs newest first. `state` is a job state, "active" (not finished) or "finished";
        `max_age_s` keeps jobs with an event that recent."""
        clauses, params = [], []
        terminal = ", ".join("?" for _ in TERMINAL_STATES)
        if state == "active":
            clauses.append(f"state NOT IN ({terminal})")
            params.extend(TERMINAL_STATES)
        elif state == "finished":
            clauses.append(f"state IN ({terminal})")
            params.extend(TERMINAL_STATES)
        elif state:
            clauses.append("state = ?")
            params.append(state)
        for column, value in (("content_type", content_type), ("agent", agent)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if max_age_s is not None:
            clauses.append("updated >= ?")
            params.append((time.time() if now is None else now) - max_age_s)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs {where} "
                          "ORDER BY updated DESC LIMIT ?", [*params, _limit(limit)])
        return [row_dict(row) for row in rows]

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE job_id = ?",
                          (job_id,))
        return row_dict(rows[0]) if rows else None

    def job_timeline(self, job_id: str) -> dict[str, Any]:
        """The job's row, its events oldest first (progress updates folded into the converting
        event they follow), and the seconds spent in each phase (None: not reached)."""
        rows = self._rows("SELECT id, received, ts, agent, scope, name, body FROM events "
                          "WHERE job_id = ? ORDER BY id", (job_id,))
        events: list[dict[str, Any]] = []
        for event_id, received, ts, agent, scope, name, body in rows:
            data = _body(body)
            if (events and name == "converting" and events[-1]["name"] == "converting"
                    and events[-1]["agent"] == agent):
                events[-1]["progress"] = data.get("progress", events[-1]["progress"])
                events[-1]["updates"] += 1
                continue
            events.append({"id": event_id, "received": received, "ts": ts, "agent": agent,
                           "scope": scope, "name": name, "progress": data.get("progress"),
                           "error": data.get("error"), "updates": 0,
                           "detail": {k: v for k, v in data.items()
                                      if k not in ("scope", "name", "job_id", "progress",
                                                   "error", "by")}})
        return {"job": self.job(job_id), "events": events, "phases": phase_seconds(events)}

    # ---- failures and counts ---------------------------------------------------------------
    def failures(self, max_age_s: float = 86400, limit: int = 50,
                 now: float | None = None) -> list[dict[str, Any]]:
        """Failed jobs grouped by reason class, the biggest group first, each with the agents
        and content types involved and the newest failure's text as an example."""
        since = (time.time() if now is None else now) - max_age_s
        rows = self._rows(
            "SELECT reason, agent, content_type, finished, error, job_id FROM jobs "
            "WHERE state = 'failed' AND finished >= ? ORDER BY finished DESC", (since,))
        groups: dict[str, dict[str, Any]] = {}
        for reason, agent, content_type, finished, error, job_id in rows:
            group = groups.setdefault(reason or "other", {
                "reason": reason or "other", "count": 0, "agents": {}, "content_types": {},
                "last": finished, "example": error, "example_job": job_id})
            group["count"] += 1
            group["agents"][agent] = group["agents"].get(agent, 0) + 1
            kind = content_type or "unknown"
            group["content_types"][kind] = group["content_types"].get(kind, 0) + 1
        ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["reason"]))
        return ordered[:_limit(limit)]

    def recent_failures(self, max_age_s: float = 86400, limit: int = 100,
                        now: float | None = None) -> list[dict[str, Any]]:
        """The failed jobs themselves, newest first."""
        since = (time.time() if now is None else now) - max_age_s
        rows = self._rows(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE state = 'failed' "
                          "AND finished >= ? ORDER BY finished DESC LIMIT ?",
                          (since, _limit(limit)))
        return [row_dict(row) for row in rows]

    def finished_counts(self, max_age_s: float = 3600, now: float | None = None
                        ) -> dict[str, dict[str, int]]:
        """{content type: {"completed": n, "failed": n}} for jobs finished in the window."""
        since = (time.time() if now is None else now) - max_age_s
        rows = self._rows("SELECT coalesce(content_type, 'unknown'), state, count(*) FROM jobs "
                          "WHERE state IN ('completed', 'failed') AND finished >= ? "
                          "GROUP BY 1, 2", (since,))
        counts: dict[str, dict[str, int]] = {}
        for content_type, state, count in rows:
            counts.setdefault(content_type, {"completed": 0, "failed": 0})[state] = count
        return counts

    # ---- agents ----------------------------------------------------------------------------
    def agent_history(self, agent: str, limit: int = 100) -> list[dict[str, Any]]:
        """The agent's state changes and the operator's commands to it, newest first."""
        marks = ", ".join("?" for _ in STATE_EVENTS)
        rows = self._rows("SELECT id, received, ts, name, body FROM events WHERE agent = ? AND "
                          f"scope = 'agent' AND name IN ({marks}) ORDER BY id DESC LIMIT ?",
                          (agent, *STATE_EVENTS, _limit(limit)))
        return [{"id": r[0], "received": r[1], "ts": r[2], "name": r[3], "body": _body(r[4])}
                for r in rows]


def history_handlers(controller: Controller) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The control socket's read-only history requests (the CLI's `job`, `failures`,
    `history`)."""
    def history() -> History:
        assert controller.history is not None
        return controller.history

    def age(args: dict[str, Any], default: float | None) -> float | None:
        value = args.get("max_age")
        return float(value) if type(value) in (int, float) and value > 0 else default

    return {
        "job": lambda args: history().job_timeline(str(args.get("job") or "")),
        "history": lambda args: history().jobs(
            args.get("state"), args.get("content_type"), args.get("agent"), age(args, None),
            args.get("limit") or 200),
        "failures": lambda args: {
            "groups": history().failures(age(args, 86400.0), args.get("limit") or 50),
            "recent": history().recent_failures(age(args, 86400.0), args.get("limit") or 50)},
        "agent_history": lambda args: history().agent_history(str(args.get("agent") or ""),
                                                              args.get("limit") or 100),
    }


def phase_seconds(events: list[dict[str, Any]]) -> dict[str, float | None]:
    """Seconds per phase from a timeline: the agent's own measure where it sent one, else the
    time between the event that starts the phase and the next one that ends it."""
    first: dict[str, float] = {}
    timings: dict[str, float] = {}
    for event in events:
        first.setdefault(event["name"], event["ts"])
        for key in AGENT_TIMINGS.values():
            value = event["detail"].get(key)
            if type(value) in (int, float):
                timings[key] = float(value)
    result: dict[str, float | None] = {}
    for name, start, ends in PHASES:
        measured = timings.get(AGENT_TIMINGS.get(name, ""))
        if measured is not None:
            result[name] = round(measured, 3)
            continue
        end = min((first[e] for e in ends if e in first and first[e] >= first.get(start, 0)),
                  default=None)
        result[name] = round(end - first[start], 3) if start in first and end is not None \
            else None
    return result


def _limit(limit: Any) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def _body(text: Any) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}
