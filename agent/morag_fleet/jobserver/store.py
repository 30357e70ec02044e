"""The job table in SQLite. Every state change is one short write transaction (`BEGIN IMMEDIATE`
or a single `UPDATE ... RETURNING`), so two pollers can never claim the same job, even from
different threads or processes sharing the database file."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    content_type TEXT NOT NULL,
    source_file_path TEXT NOT NULL,
    original_name TEXT NOT NULL,
    ingestion_task_id TEXT,
    task_options TEXT NOT NULL,
    worker_id TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    expires_at REAL,
    lease_expires_at REAL,
    retry_count INTEGER NOT NULL DEFAULT 0,
    error_message TEXT,
    success INTEGER,
    content TEXT,
    metadata TEXT,
    processing_time REAL
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (status, content_type, seq);
CREATE INDEX IF NOT EXISTS jobs_source ON jobs (source_file_path);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

COUNTER_NAMES = (
    "claims", "claims_rolled_back", "duplicate_results", "lease_renewals", "lease_expiries",
    "refused_results", "results",
)


@dataclass(frozen=True)
class Job:
    job_id: str
    status: str
    content_type: str
    source_file_path: str
    original_name: str
    ingestion_task_id: str | None
    task_options: dict[str, Any]
    worker_id: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    expires_at: float | None
    lease_expires_at: float | None
    retry_count: int
    error_message: str | None
    success: bool | None
    content: str | None
    metadata: dict[str, Any] | None
    processing_time: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        values = {key: row[key] for key in row.keys() if key != "seq"}  # noqa: SIM118
        values["task_options"] = json.loads(values["task_options"])
        values["metadata"] = json.loads(values["metadata"]) if values["metadata"] else None
        values["success"] = None if values["success"] is None else bool(values["success"])
        return cls(**values)


@dataclass(frozen=True)
class NewJob:
    content_type: str
    source_file_path: str
    original_name: str
    ingestion_task_id: str | None
    task_options: dict[str, Any]
    expires_at: float | None


@dataclass(frozen=True)
class Outcome:
    success: bool
    content: str | None
    metadata: dict[str, Any] | None
    error_message: str | None
    processing_time: float | None


class ResultVerdict(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same outcome again for a finished job: nothing changes
    CONFLICT = "conflict"  # a different outcome for a finished job, or a worker that lost it
    NOT_FOUND = "not_found"


class LeaseVerdict(Enum):
    RENEWED = "renewed"
    NOT_HELD = "not_held"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Expired:
    """What the lease sweep did: jobs put back in the queue, jobs failed for good."""

    requeued: list[str]
    failed: list[str]


class JobStore:
    """One connection per thread (sqlite3 connections are not shared across threads); WAL so
    status reads never wait for a claim."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._local = threading.local()
        self._connection().executescript(SCHEMA)  # executescript commits on its own
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)",
                [(name,) for name in COUNTER_NAMES],
            )

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, isolation_level=None, timeout=30)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int = 1) -> None:
        db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    def create(self, new: NewJob, now: float) -> Job:
        job_id = str(uuid.uuid4())
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO jobs (job_id, status, content_type, source_file_path, original_name,"
                " ingestion_task_id, task_options, created_at, expires_at)"
                " VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    job_id,
                    new.content_type,
                    new.source_file_path,
                    new.original_name,
                    new.ingestion_task_id,
                    json.dumps(new.task_options),
                    now,
                    new.expires_at,
                ),
            ).fetchone()
        return Job.from_row(row)

    def get(self, job_id: str) -> Job | None:
        db = self._connection()
        row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def claim(
        self, worker_id: str, content_types: Sequence[str], now: float, lease_seconds: float | None
    ) -> Job | None:
        """The oldest pending, unexpired job of one of the types, now processing by the worker."""
        if not content_types:
            return None
        marks = ",".join("?" for _ in content_types)
        lease_until = now + lease_seconds if lease_seconds else None
        with self._transaction() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'processing', worker_id = ?, started_at = ?,"
                " lease_expires_at = ?"
                " WHERE seq = (SELECT seq FROM jobs WHERE status = 'pending'"
                f" AND content_type IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)"
                " ORDER BY seq LIMIT 1) AND status = 'pending' RETURNING *",
                (worker_id, now, lease_until, *content_types, now),
            ).fetchone()
            if row is not None:
                self._bump(db, "claims")
        return Job.from_row(row) if row else None

    def renew_lease(
        self, job_id: str, worker_id: str, now: float, lease_seconds: float
    ) -> tuple[LeaseVerdict, float | None]:
        with self._transaction() as db:
            row = db.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE job_id = ? AND status = 'processing'"
                " AND worker_id = ? RETURNING lease_expires_at",
                (now + lease_seconds, job_id, worker_id),
            ).fetchone()
            if row is not None:
                self._bump(db, "lease_renewals")
                return LeaseVerdict.RENEWED, row["lease_expires_at"]
            exists = db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return (LeaseVerdict.NOT_HELD if exists else LeaseVerdict.NOT_FOUND), None

    def submit_result(
        self, job_id: str, outcome: Outcome, worker_id: str | None, now: float,
        anonymous: bool = False,
    ) -> tuple[ResultVerdict, Job | None]:
        """Finish a job once, and only from the worker holding it: a result from anyone else
        (a worker whose lease ran out, a caller naming no worker) would overwrite or be silently
        dropped in place of the holder's. The holder repeating its outcome is a harmless
        duplicate. `anonymous` accepts a result that names no worker for a job still processing,
        for clients that speak only MoRAG's plain contract."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return ResultVerdict.NOT_FOUND, None
            job = Job.from_row(row)
            holder = worker_id is not None and worker_id == job.worker_id
            finished = job.status in ("completed", "failed")
            if finished and holder and job.success == outcome.success:
                self._bump(db, "duplicate_results")
                return ResultVerdict.DUPLICATE, job
            if job.status != "processing" or not (holder or (anonymous and worker_id is None)):
                self._bump(db, "refused_results")
                return ResultVerdict.CONFLICT, job
            row = db.execute(
                "UPDATE jobs SET status = ?, success = ?, content = ?, metadata = ?,"
                " error_message = ?, processing_time = ?, completed_at = ?,"
                " lease_expires_at = NULL WHERE job_id = ? RETURNING *",
                (
                    "completed" if outcome.success else "failed",
                    int(outcome.success),
                    outcome.content,
                    json.dumps(outcome.metadata) if outcome.metadata is not None else None,
                    outcome.error_message,
                    outcome.processing_time,
                    now,
                    job_id,
                ),
            ).fetchone()
            self._bump(db, "results")
        return ResultVerdict.APPLIED, Job.from_row(row)

    def unclaim(self, job_id: str, worker_id: str) -> bool:
        """Undo a claim whose answer never reached the worker (it hung up first): the job goes
        back to the queue as if never handed out, so it is neither orphaned nor counted as a
        retry."""
        with self._transaction() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'pending', worker_id = NULL, started_at = NULL,"
                " lease_expires_at = NULL WHERE job_id = ? AND status = 'processing'"
                " AND worker_id = ? RETURNING job_id",
                (job_id, worker_id),
            ).fetchone()
            if row is not None:
                self._bump(db, "claims_rolled_back")
        return row is not None

    def held(self, worker_id: str) -> list[Job]:
        """The jobs processing by this worker: what it must report, whatever its memory says."""
        db = self._connection()
        rows = db.execute(
            "SELECT * FROM jobs WHERE status = 'processing' AND worker_id = ? ORDER BY seq",
            (worker_id,),
        ).fetchall()
        return [Job.from_row(row) for row in rows]

    def expire_leases(self, now: float, max_retries: int) -> Expired:
        """Processing jobs whose lease ran out go back to pending, or fail once they have been
        retried `max_retries` times: a job that kills every worker must not circulate forever."""
        with self._transaction() as db:
            requeued = db.execute(
                "UPDATE jobs SET status = 'pending', worker_id = NULL, started_at = NULL,"
                " lease_expires_at = NULL, retry_count = retry_count + 1"
                " WHERE status = 'processing' AND lease_expires_at IS NOT NULL"
                " AND lease_expires_at <= ? AND retry_count < ? RETURNING job_id",
                (now, max_retries),
            ).fetchall()
            failed = db.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?, lease_expires_at = NULL,"
                " error_message = 'lease expired ' || (retry_count + 1) || ' times'"
                " WHERE status = 'processing' AND lease_expires_at IS NOT NULL"
                " AND lease_expires_at <= ? RETURNING job_id",
                (now, now),
            ).fetchall()
            if requeued or failed:
                self._bump(db, "lease_expiries", len(requeued) + len(failed))
        return Expired([r["job_id"] for r in requeued], [r["job_id"] for r in failed])

    def expire_unclaimed(self, now: float) -> list[str]:
        """Pending jobs past their expiry time fail visibly instead of waiting forever."""
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?,"
                " error_message = 'job expired before a worker claimed it'"
                " WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?"
                " RETURNING job_id",
                (now, now),
            ).fetchall()
        return [r["job_id"] for r in rows]

    def open_sources(self, paths: Sequence[str]) -> dict[str, bool]:
        """For each path some job names: True while one of its jobs has not ended."""
        db = self._connection()
        found: dict[str, bool] = {}
        for start in range(0, len(paths), 500):  # below SQLite's limit on bound parameters
            chunk = paths[start:start + 500]
            marks = ",".join("?" for _ in chunk)
            for row in db.execute(
                "SELECT source_file_path AS path,"
                " MAX(status NOT IN ('completed', 'failed')) AS open"
                f" FROM jobs WHERE source_file_path IN ({marks}) GROUP BY source_file_path",
                chunk,
            ):
                found[row["path"]] = bool(row["open"])
        return found

    def stats(self) -> dict[str, int]:
        db = self._connection()
        counts = {status: 0 for status in ("pending", "processing", "completed", "failed")}
        for row in db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"):
            counts[row["status"]] = row["n"]
        for row in db.execute("SELECT name, value FROM counters"):
            counts[row["name"]] = row["value"]
        return counts

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
