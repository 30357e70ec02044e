"""Job history for the dashboard, read from the controller's event table.

The web threads open their own read-only SQLite connections (WAL lets them read while the loop
writes, and SQLite releases the GIL while it works), so a history page never waits on ingest
and ingest never waits on a page. A job's story is rebuilt from its events: claimed (with the
content type), downloading, converting (with progress), spooled, then completed or failed."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TERMINAL = ("completed", "failed", "result_refused", "result_discarded")
# A phase lasts from its first event to the first event of the next one.
PHASES = (("download", "downloading", "converting"), ("convert", "converting", "spooled"),
          ("deliver", "spooled", "end"))
MAX_JOB_EVENTS = 50_000  # a page never reads more than this many rows
DEFAULT_WINDOW_S = 3600.0


@dataclass
class JobStory:
    job_id: str
    agent: str
    content_type: str = ""
    state: str = "running"  # running | completed | failed | refused | discarded
    phase: str = ""
    progress: float | None = None
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def phase_durations(self) -> dict[str, float | None]:
        """Seconds spent downloading, converting and delivering (None: not reached)."""
        first: dict[str, float] = {}
        for event in self.events:
            first.setdefault(event["name"], event["ts"])
        if self.ended is not None:
            first["end"] = self.ended
        result: dict[str, float | None] = {}
        for label, begin, end in PHASES:
            start = first.get(begin, first.get("claimed") if begin == "downloading" else None)
            stop = first.get(end, self.ended if end != "end" else None)
            result[label] = max(0.0, stop - start) if start is not None and stop is not None \
                else None
        return result


class History:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
            db.execute("PRAGMA query_only=1")
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _rows(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._db().execute(sql, list(params)).fetchall()
        except sqlite3.OperationalError:  # no history yet (first start), or a busy file
            return []

    # ---- jobs -----------------------------------------------------------------------------
    def jobs(self, since: float, agent: str | None = None) -> list[JobStory]:
        """Jobs with an event since `since`, newest first, each with its whole story."""
        clauses, params = ["scope = 'job'", "received >= ?"], [since]
        if agent:
            clauses.append("agent = ?")
            params.append(agent)
        ids = [r[0] for r in self._rows(
            f"SELECT DISTINCT job_id FROM events WHERE {' AND '.join(clauses)} "
            "AND job_id IS NOT NULL ORDER BY id DESC LIMIT ?", [*params, MAX_JOB_EVENTS])]
        if not ids:
            return []
        # the claim may predate the window: read each listed job's events from a day back
        rows = self._rows(
            "SELECT agent, ts, received, name, job_id, body FROM events WHERE scope = 'job' "
            "AND received >= ? AND job_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            [since - 86400, json.dumps(ids)])
        return sorted(build_stories(rows).values(), key=lambda s: -(s.started or 0))

    def job(self, job_id: str) -> JobStory | None:
        rows = self._rows("SELECT agent, ts, received, name, job_id, body FROM events "
                          "WHERE scope = 'job' AND job_id = ? ORDER BY id LIMIT 1000", [job_id])
        return build_stories(rows).get(job_id)

    def outcomes(self, since: float) -> dict[str, dict[str, int]]:
        """{content type: {completed: n, failed: n}} for jobs that ended since `since`."""
        ended = self._rows("SELECT job_id, name FROM events WHERE scope = 'job' AND "
                           "received >= ? AND name IN ('completed', 'failed')", [since])
        if not ended:
            return {}
        types = dict(self._rows(
            "SELECT job_id, json_extract(body, '$.content_type') FROM events WHERE "
            "scope = 'job' AND name = 'claimed' AND received >= ? AND job_id IN "
            "(SELECT value FROM json_each(?))", [since - 86400, json.dumps([r[0] for r in ended])]))
        result: dict[str, dict[str, int]] = {}
        for job_id, name in ended:
            kind = types.get(job_id) or "unknown"
            counts = result.setdefault(str(kind), {"completed": 0, "failed": 0})
            counts[name] += 1
        return result

    # ---- agents ---------------------------------------------------------------------------
    def agent_changes(self, agent: str, limit: int = 100) -> list[dict[str, Any]]:
        """The agent's own events (hello, lost, drained, resumed...), newest first."""
        rows = self._rows("SELECT received, name, body FROM events WHERE agent = ? AND "
                          "scope = 'agent' ORDER BY id DESC LIMIT ?", [agent, limit])
        return [{"received": r[0], "name": r[1], "body": _body(r[2])} for r in rows]


def build_stories(rows: Iterable[tuple[Any, ...]]) -> dict[str, JobStory]:
    stories: dict[str, JobStory] = {}
    for agent, ts, received, name, job_id, body_text in rows:
        body = _body(body_text)
        story = stories.get(job_id)
        if story is None or (name == "claimed" and story.ended is not None):
            story = stories[job_id] = JobStory(job_id=job_id, agent=agent)  # a re-run
        when = ts if isinstance(ts, (int, float)) else received
        story.events.append({"name": name, "ts": when, "agent": agent, "body": body})
        _apply(story, name, when, body)
    return stories


def _apply(story: JobStory, name: str, when: float, body: dict[str, Any]) -> None:
    if story.started is None:
        story.started = when
    if isinstance(body.get("content_type"), str) and body["content_type"]:
        story.content_type = body["content_type"]
    if name in TERMINAL:
        story.ended = when
        story.state = name.removeprefix("result_")
        if name != "completed":
            story.error = str(body.get("error") or body.get("reason") or name)
        return
    story.phase = name
    progress = body.get("progress")
    if type(progress) in (int, float):
        story.progress = float(progress)


def _body(text: Any) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}
