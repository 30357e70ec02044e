"""The durable job journal and result outbox (SQLite in `state_dir`).

Why: MoRAG's server never requeues a job a dead worker held, so every claimed job must be reported
even across our own crash. Each phase is written before it is acted on; a result is written before
it is submitted, so a restart finds it and delivers it. WAL mode keeps writes cheap and crash-safe.

Two durability levels: the writes that must survive a power cut (a claim, a spooled result, a
crash count) are synced to disk before they return (`synchronous=FULL`); phase changes and
delivery marks only need to survive our own crash (`synchronous=NORMAL`), because losing one
after a power cut merely re-runs a job we still hold or asks the server for its status before
resubmitting. The next synced commit carries the unsynced ones to disk with it. The levels are two
connections (the setting is per connection), and a one-statement write is its own transaction.

Why a checkpoint after each synced write: in WAL mode a commit lives only in the `-wal` file
until a checkpoint copies it into the main file, and SQLite silently drops a WAL that is missing
or fails its checksum. A claim kept only there would be forgotten with it. So every synced write
is followed by `wal_checkpoint(TRUNCATE)`: the main file holds it and the WAL is empty again.
Damage and loss are detected, not survived silently (`journal_check`): `damage` lists what was
found when the journal was opened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from morag_fleet.agent.journal_check import WriteMarker, missing_writes, wal_damage

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    content_type  TEXT NOT NULL,
    job_json      TEXT NOT NULL,
    phase         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    crashes       INTEGER NOT NULL DEFAULT 0,
    result_json   TEXT,
    submit_tries  INTEGER NOT NULL DEFAULT 0,
    next_try_at   REAL NOT NULL DEFAULT 0,
    last_error    TEXT,
    cancelled     INTEGER NOT NULL DEFAULT 0,
    cancel_note   TEXT,
    claimed_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_phase ON jobs(phase);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# Columns added after the first release: a journal written by an older agent gets them on open.
ADDED_COLUMNS = {"cancelled": "INTEGER NOT NULL DEFAULT 0", "cancel_note": "TEXT"}
# Cheap writes alone (retries during a long API outage) also checkpoint now and then, so the WAL
# stays bounded with automatic checkpoints off.
UNSYNCED_CHECKPOINT_EVERY = 500
COUNT_WRITE = ("INSERT INTO meta(name, value) VALUES ('writes', 1)"
               " ON CONFLICT(name) DO UPDATE SET value = value + 1")

# claimed -> downloading -> converting -> spooled (result written) -> delivered
ACTIVE_PHASES = ("claimed", "downloading", "converting")
SPOOLED = "spooled"
DELIVERED = "delivered"


@dataclass(frozen=True)
class JournalEntry:
    job_id: str
    content_type: str
    job: dict[str, Any]
    phase: str
    attempts: int
    crashes: int
    result: dict[str, Any] | None
    submit_tries: int
    next_try_at: float
    last_error: str | None
    cancelled: bool = False  # an operator's cancel was accepted: never run again
    cancel_note: str | None = None


class Journal:
    """Thread-safe; two connections guarded by one lock (writes are tiny, a few per job)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "journal.sqlite3"
        self._lock = threading.Lock()
        self._marker = WriteMarker(state_dir / "journal.marker")
        marked = self._marker.read()
        existed = self.path.exists()
        found = wal_damage(self.path.with_name(self.path.name + "-wal"))
        self.damage: list[str] = [found] if found else []
        self._db = self._open()
        self._unsynced_db = self._connect("NORMAL")
        self._writes = self._count_writes()
        self._unsynced_writes = 0
        lost = missing_writes(self.path, self._writes if existed else None, marked)
        self.damage += [lost] if lost else []
        if marked != self._writes:
            self._marker.set(self._writes)  # from here on, count from what the file holds

    def _open(self) -> sqlite3.Connection:
        """A journal SQLite cannot read is moved aside (kept for a person to look at) and a
        fresh one started; the loss is reported in `damage`."""
        try:
            db = self._connect("FULL")
            db.executescript(SCHEMA)
            _add_columns(db)
            return db
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                source = self.path.with_name(self.path.name + suffix)
                if source.exists():
                    source.rename(aside.with_name(aside.name + suffix))
            self.damage.append(f"{self.path} is unreadable ({exc}); moved to {aside}: every "
                               "job it held is forgotten")
        db = self._connect("FULL")
        db.executescript(SCHEMA)
        return db

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # only our TRUNCATE checkpoints (see above)
        return db

    def _count_writes(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'writes'").fetchone()
        return int(row[0]) if row else 0

    def _write(self, sql: str, args: tuple[Any, ...], synced: bool = True) -> sqlite3.Cursor:
        """One statement, committed on return; `synced=False` for writes a power cut may lose
        without losing a job (see above)."""
        if synced:
            with self._tx() as db:
                return db.execute(sql, args)
        with self._lock:
            cursor = self._unsynced_db.execute(sql, args)
            self._unsynced_writes += 1
            if self._unsynced_writes >= UNSYNCED_CHECKPOINT_EVERY:
                self._checkpoint()
            return cursor

    def _checkpoint(self) -> None:
        """Everything committed so far into the main file, and the WAL emptied; under the lock."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._unsynced_writes = 0

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Several statements as one synced, counted transaction, checkpointed into the main
        file. The marker is bumped first, so a lost write is never missing from it."""
        with self._lock:
            self._marker.set(self._writes + 1)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute(COUNT_WRITE)
            except BaseException:
                self._db.execute("ROLLBACK")
                self._marker.set(self._writes)
                raise
            self._db.execute("COMMIT")
            self._writes += 1
            self._checkpoint()

    def record_claim(self, job_id: str, content_type: str, job: dict[str, Any]) -> bool:
        """False when this job is already in hand here (a duplicate claim from a racy server)."""
        now = time.time()
        # A delivered job handed out again (its lease expired server-side) is ours anew.
        cur = self._write(
            "INSERT INTO jobs(job_id, content_type, job_json, phase, claimed_at, updated_at)"
            " VALUES (?, ?, ?, 'claimed', ?, ?) ON CONFLICT(job_id) DO UPDATE SET"
            " phase = 'claimed', job_json = excluded.job_json, result_json = NULL,"
            " attempts = 0, crashes = 0, submit_tries = 0, next_try_at = 0,"
            " claimed_at = excluded.claimed_at, updated_at = excluded.updated_at"
            " WHERE jobs.phase = 'delivered'",
            (job_id, content_type, json.dumps(job), now, now),
        )
        return cur.rowcount == 1

    def set_phase(self, job_id: str, phase: str) -> None:
        extra = ", attempts = attempts + 1" if phase == "converting" else ""
        self._write(f"UPDATE jobs SET phase = ?, updated_at = ?{extra} WHERE job_id = ?",
                    (phase, time.time(), job_id), synced=False)

    def spool_result(self, job_id: str, result: dict[str, Any]) -> None:
        """The result is durable from here on; only delivery remains."""
        self._write("UPDATE jobs SET phase = ?, result_json = ?, next_try_at = 0, updated_at = ?"
                    " WHERE job_id = ?", (SPOOLED, json.dumps(result), time.time(), job_id))

    def record_cancel(self, job_id: str, note: str | None) -> None:
        """Synced: a cancel the operator was told about must hold across a crash, so a restarted
        agent reports the job cancelled instead of running it again."""
        self._write("UPDATE jobs SET cancelled = 1, cancel_note = ?, updated_at = ?"
                    " WHERE job_id = ?", (note, time.time(), job_id))

    def record_crash(self, job_id: str) -> int:
        with self._tx() as db:
            db.execute("UPDATE jobs SET crashes = crashes + 1 WHERE job_id = ?", (job_id,))
            row = db.execute("SELECT crashes FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return int(row[0]) if row else 0

    def record_submit_failure(self, job_id: str, error: str, retry_in: float) -> None:
        self._write("UPDATE jobs SET submit_tries = submit_tries + 1, last_error = ?,"
                    " next_try_at = ?, updated_at = ? WHERE job_id = ?",
                    (error, time.time() + retry_in, time.time(), job_id), synced=False)

    def mark_delivered(self, job_id: str) -> None:
        self._write("UPDATE jobs SET phase = ?, result_json = NULL, updated_at = ?"
                    " WHERE job_id = ?", (DELIVERED, time.time(), job_id), synced=False)

    def _select(self, where: str, args: tuple[Any, ...] = ()) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, content_type, job_json, phase, attempts, crashes, result_json,"
                " submit_tries, next_try_at, last_error, cancelled, cancel_note"
                f" FROM jobs WHERE {where}"
                " ORDER BY claimed_at",
                args,
            ).fetchall()
        return [
            JournalEntry(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5],
                         json.loads(r[6]) if r[6] else None, r[7], r[8], r[9], bool(r[10]),
                         r[11])
            for r in rows
        ]

    def interrupted(self) -> list[JournalEntry]:
        """Jobs claimed but neither spooled nor delivered: a previous run died holding them."""
        marks = ",".join("?" * len(ACTIVE_PHASES))
        return self._select(f"phase IN ({marks})", ACTIVE_PHASES)

    def outbox(self, due_only: bool = False) -> list[JournalEntry]:
        if due_only:
            return self._select("phase = ? AND next_try_at <= ?", (SPOOLED, time.time()))
        return self._select("phase = ?", (SPOOLED,))

    def get(self, job_id: str) -> JournalEntry | None:
        found = self._select("job_id = ?", (job_id,))
        return found[0] if found else None

    def outbox_depth(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE phase = ?", (SPOOLED,)).fetchone()[0])

    def prune_delivered(self, older_than_s: float = 7 * 86400) -> int:
        """Delivered rows are kept a week so duplicate claims are recognised, then dropped."""
        cur = self._write("DELETE FROM jobs WHERE phase = ? AND updated_at < ?",
                          (DELIVERED, time.time() - older_than_s), synced=False)
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._unsynced_db.close()
            self._db.close()
            self._marker.close()


def _add_columns(db: sqlite3.Connection) -> None:
    present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for name, declaration in ADDED_COLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
