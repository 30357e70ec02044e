"""SQLite history for the controller: agents, event history, one row per job (kept up to date
from the job events, see `jobrows`), and each agent's last recorded event sequence. The sequence
is written in the same transaction as the events it covers, so an ack is only ever sent for
events that are on disk and a restarted controller still deduplicates.

An agent row keeps what changes rarely as JSON and its last heartbeat as the frame it arrived in
(`beat`), so saving ten thousand agents costs no per-heartbeat encoding. Rows are read back
through `restore`, which trusts nothing in them: a row the views could not show never loads."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from morag_fleet.controller.jobrows import JOB_UPSERT, ProgressSteps, job_row
from morag_fleet.controller.restore import restore_record
from morag_fleet.controller.state import AgentRecord
from morag_fleet.log import get_logger

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY, key TEXT, last_seen REAL NOT NULL, data TEXT NOT NULL, beat BLOB);
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY, sid TEXT NOT NULL, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, ts REAL NOT NULL,
    agent TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL, job_id TEXT,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_agent ON events (agent, id);
CREATE INDEX IF NOT EXISTS events_received ON events (received);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, id);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, agent TEXT NOT NULL, content_type TEXT, state TEXT NOT NULL,
    claimed REAL, updated REAL NOT NULL, finished REAL, progress REAL, error TEXT, reason TEXT,
    download_s REAL, convert_s REAL, deliver_s REAL, duration_s REAL);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (state, finished);
CREATE INDEX IF NOT EXISTS jobs_agent ON jobs (agent);
"""


@dataclass(frozen=True)
class Retention:
    max_age_s: float = 30 * 86400
    max_events: int = 200_000


@dataclass
class PendingEvent:
    agent: str
    ts: float
    body: dict[str, Any]


class Store:
    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        self.path = path
        self.retention = retention or Retention()
        self._progress = ProgressSteps()
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        had_jobs = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                   "name = 'jobs'").fetchone() is not None
        self.db.executescript(SCHEMA)
        if not had_jobs:
            self._fill_jobs_from_events()
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(agents)")}
        if "beat" not in columns:  # a history written before heartbeats were kept as frames
            self.db.execute("ALTER TABLE agents ADD COLUMN beat BLOB")

    def close(self) -> None:
        self.db.close()

    def _fill_jobs_from_events(self) -> None:
        """A history written before jobs had rows: build them from the job events it kept,
        once, so its jobs show up with the new ones."""
        cursor = self.db.execute("SELECT agent, ts, body FROM events WHERE scope = 'job' "
                                 "ORDER BY id")
        filled = 0
        with self.db:
            self.db.execute("BEGIN")
            while rows := cursor.fetchmany(5000):
                values = [row for agent, ts, body in rows
                          if type(ts) in (int, float) and isinstance(agent, str)
                          and (row := job_row(agent, ts, _event_body(body)))]
                self.db.executemany(JOB_UPSERT, values)
                filled += len(values)
        if filled:
            log.info("job_history_built", events=filled, path=str(self.path))

    # ---- agents ---------------------------------------------------------------------------
    def load_agents(self) -> list[AgentRecord]:
        sessions = {name: (sid, seq) for name, sid, seq in
                    self.db.execute("SELECT name, sid, last_seq FROM sessions")}
        records = []
        for name, data, beat in self.db.execute("SELECT name, data, beat FROM agents"):
            record = restore_record(_json(data))
            if record is None:
                log.warning("stored_agent_unreadable", agent=str(name)[:200])
                continue
            sid, seq = sessions.get(record.name, ("", 0))
            if type(sid) is str and type(seq) is int:
                record.sid, record.last_seq = sid, seq
            record.beat = beat if type(beat) is bytes else None
            records.append(record)
        return records

    def forget_agent(self, name: str) -> None:
        """Remove an agent's row and its session (its events stay, until retention)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM agents WHERE name = ?", (name,))
            self.db.execute("DELETE FROM sessions WHERE name = ?", (name,))

    def save_agents(self, records: Iterable[AgentRecord]) -> None:
        rows = [(r.name, r.key, r.last_seen, json.dumps(r.stored_dict(), default=str), r.beat)
                for r in records]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO agents (name, key, last_seen, data, beat) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET key=excluded.key, last_seen=excluded.last_seen, "
                "data=excluded.data, beat=excluded.beat", rows)

    # ---- events ---------------------------------------------------------------------------
    def record_events(self, events: list[PendingEvent], sessions: dict[str, tuple[str, int]],
                      now: float | None = None) -> None:
        """Events and the sequence numbers they advance, atomically."""
        now = time.time() if now is None else now
        rows = [(now, e.ts, e.agent, e.body.get("scope", "agent"), str(e.body.get("name", "")),
                 e.body.get("job_id"), json.dumps(e.body, default=str)) for e in events]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO events (received, ts, agent, scope, name, job_id, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self.db.executemany(JOB_UPSERT, [row for e in events
                                             if self._progress.wanted(e.body)
                                             and (row := job_row(e.agent, e.ts, e.body))])
            self.db.executemany(
                "INSERT INTO sessions (name, sid, last_seq) VALUES (?, ?, ?) ON CONFLICT(name) "
                "DO UPDATE SET sid=excluded.sid, last_seq=excluded.last_seq",
                [(name, sid, seq) for name, (sid, seq) in sessions.items()])

    def events(self, after_id: int = 0, agent: str | None = None, limit: int = 100,
               job_id: str | None = None) -> list[dict[str, Any]]:
        """Events with id > after_id, oldest first: the newest `limit` of them when after_id is
        0 (a history view), else the first `limit` after it (following, nothing skipped)."""
        clauses, params = ["id > ?"], [after_id]
        if agent:
            clauses.append("agent = ?")
            params.append(agent)
        if job_id:
            clauses.append("job_id = ?")
            params.append(job_id)
        sql = (f"SELECT id, received, ts, agent, scope, name, job_id, body FROM events "
               f"WHERE {' AND '.join(clauses)} ORDER BY id {'ASC' if after_id else 'DESC'} "
               "LIMIT ?")
        rows = self.db.execute(sql, [*params, limit]).fetchall()
        if after_id:
            rows.reverse()
        return [{"id": r[0], "received": r[1], "ts": r[2], "agent": r[3], "scope": r[4],
                 "name": r[5], "job_id": r[6], "body": _event_body(r[7])}
                for r in reversed(rows)]

    def last_event_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def event_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM events").fetchone()[0])

    def apply_retention(self, now: float | None = None) -> int:
        """Drop events older than the age limit and beyond the count limit, and agents not
        seen within the age limit; returns the number of events removed."""
        now = time.time() if now is None else now
        cutoff = now - self.retention.max_age_s
        with self.db:
            self.db.execute("BEGIN")
            removed = self.db.execute("DELETE FROM events WHERE received < ?", (cutoff,)).rowcount
            top = self.db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
            removed += self.db.execute("DELETE FROM events WHERE id <= ?",
                                       (top - self.retention.max_events,)).rowcount
            self.db.execute("DELETE FROM jobs WHERE updated < ?", (cutoff,))
            self.db.execute("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs ORDER BY "
                            "updated DESC LIMIT -1 OFFSET ?)", (self.retention.max_events,))
            self.db.execute("DELETE FROM sessions WHERE name IN "
                            "(SELECT name FROM agents WHERE last_seen < ?)", (cutoff,))
            self.db.execute("DELETE FROM agents WHERE last_seen < ?", (cutoff,))
        return removed


def _json(text: Any) -> Any:
    """A stored JSON value, or None when the text is not JSON (a damaged row)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None


def _event_body(text: Any) -> dict[str, Any]:
    """A stored event body; a damaged one is shown as its raw text rather than failing the view."""
    body = _json(text)
    return body if type(body) is dict else {"unreadable": str(text)[:1000]}
