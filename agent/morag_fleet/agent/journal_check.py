"""Telling a damaged or lost journal from a fresh one.

Why: SQLite opens a journal whose WAL is gone or fails its checksum without a word (it drops the
frames it cannot trust), and a missing journal file is simply created anew. An agent that starts
so would forget the jobs it holds, and MoRAG would wait for them forever. Two witnesses outside
the database catch that:

- a write marker (`journal.marker`) that counts the writes that matter (claims, results, crash
  counts). It is bumped and synced before each of them, and the database counts the same writes
  in its `meta` table; fewer in the database than in the marker means writes were lost.
- the WAL itself, read frame by frame with SQLite's checksums before SQLite opens it: the
  journal truncates its WAL at every checkpoint, so a frame that fails its checksum is damage
  (or a write torn by a power cut), never a stale leftover.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import time
from pathlib import Path

WAL_MAGIC = (0x377F0682, 0x377F0683)  # little- and big-endian checksums
WAL_HEADER = 32
FRAME_HEADER = 24
DAMAGE_REPORT = "journal-damage.jsonl"


class WriteMarker:
    """The count of the journal's important writes, in a file of its own, synced on each bump."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or "0")
        except FileNotFoundError:
            return None
        except ValueError:
            return -1  # unreadable: damaged too

    def set(self, writes: int) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self._fd, f"{writes:020d}\n".encode(), 0)
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def wal_damage(wal: Path) -> str | None:
    """What a damaged WAL loses, or None when every frame in it checks out."""
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return None
    if not data:
        return None
    if len(data) < WAL_HEADER or struct.unpack(">I", data[:4])[0] not in WAL_MAGIC:
        return f"{wal} has no valid WAL header: everything written since the last checkpoint"
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    order = ">" if magic & 1 else "<"
    if _checksum(data[:24], order, 0, 0) != (c1, c2):
        return f"{wal} header fails its checksum: everything written since the last checkpoint"
    frame = FRAME_HEADER + page_size
    total = (len(data) - WAL_HEADER) // frame
    s0, s1 = c1, c2
    for index in range(total):
        start = WAL_HEADER + index * frame
        _page, _commit, f_salt1, f_salt2, f1, f2 = struct.unpack(">6I", data[start:start + 24])
        s0, s1 = _checksum(data[start:start + 8], order, s0, s1)
        s0, s1 = _checksum(data[start + 24:start + frame], order, s0, s1)
        if (f_salt1, f_salt2) != (salt1, salt2) or (f1, f2) != (s0, s1):
            return (f"{wal} frame {index + 1} of {total} fails its checksum: SQLite drops it and "
                    f"the {total - index - 1} after it (phase changes and delivery marks written "
                    "since the last checkpoint)")
    return None


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum over 32-bit word pairs, continued from (s0, s1)."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def missing_writes(db_path: Path, in_db: int | None, marked: int | None) -> str | None:
    """Compares the database's count of important writes with the marker's."""
    if not marked:
        return None
    if marked < 0:
        return f"{db_path.with_suffix('.marker')} is unreadable: lost writes cannot be told"
    if in_db is None:
        return (f"{db_path} is missing although {marked} claims, results and crash counts were "
                "recorded in it: every job it held is forgotten")
    if in_db < marked:
        return (f"{db_path} holds {in_db} of the {marked} claims, results and crash counts "
                f"recorded: {marked - in_db} lost (or the agent died while writing the last one)")
    return None


def record_damage(state_dir: Path, findings: list[str]) -> None:
    """Kept for `morag-agent check` until a person removes the file."""
    with (state_dir / DAMAGE_REPORT).open("a") as report:
        report.write(json.dumps({"at": time.time(), "findings": findings}) + "\n")


def inspect_offline(state_dir: Path) -> list[str]:
    """For `morag-agent check`: damage reported by earlier starts, and damage found now
    (read only, so the evidence stays for the agent's next start)."""
    findings = []
    report = state_dir / DAMAGE_REPORT
    if report.exists():
        for line in report.read_text(errors="replace").splitlines():
            entry = json.loads(line) if line.startswith("{") else {"findings": [line]}
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.get("at", 0)))
            findings += [f"at {when} UTC: {f}" for f in entry.get("findings", [])]
        if findings:
            findings.append(f"(remove {report} once handled)")
    db_path = state_dir / "journal.sqlite3"
    wal = db_path.with_name(db_path.name + "-wal")
    if wal_damage(wal):
        time.sleep(0.2)  # a running agent may have been writing its last frame: look again
    now = [wal_damage(wal),
           missing_writes(db_path, _count_read_only(db_path),
                          WriteMarker(state_dir / "journal.marker").read())]
    return findings + [f"now: {f}" for f in now if f]


def _count_read_only(db_path: Path) -> int | None:
    if not db_path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'writes'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0
