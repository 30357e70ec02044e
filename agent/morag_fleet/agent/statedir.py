"""A state dir the journal cannot live in, said in one line with what to do, not as an sqlite3
traceback: read-only, a file where the directory should be, or a journal SQLite cannot use.

The directory is probed without opening the journal, so the journal's own handling of damage
(and its report of it) is left to the journal.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

JOURNAL_NAME = "journal.sqlite3"
PROBE_NAME = ".morag-state-probe"


def state_dir_problem(state_dir: Path) -> str | None:
    """None when `state_dir` is (or can be made) a directory this process can write in."""
    if state_dir.exists() and not state_dir.is_dir():
        return (f"state_dir {state_dir} is not a directory; remove or rename that file, or set "
                "state_dir to a directory this user can write")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        probe = state_dir / PROBE_NAME
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return (f"state_dir {state_dir} is not writable ({exc.strerror}); the journal "
                f"{state_dir / JOURNAL_NAME} must be written before any job is claimed: fix "
                "the directory's owner, mode or mount, or set state_dir to a writable one")
    journal = state_dir / JOURNAL_NAME
    if journal.exists() and not os.access(journal, os.R_OK | os.W_OK):
        return (f"the journal {journal} is not readable and writable by this user; fix its "
                "owner or mode")
    return None


def journal_error(state_dir: Path, exc: sqlite3.Error) -> str:
    """The line for an sqlite3 error raised while the agent opened its journal."""
    journal = state_dir / JOURNAL_NAME
    if isinstance(exc, sqlite3.OperationalError):
        return (f"cannot open the journal {journal}: {exc}; check that state_dir {state_dir} "
                "is a writable directory on a mounted, non-full disk")
    return (f"the journal {journal} cannot be used ({exc}); move it aside to start a fresh one "
            "(jobs recorded in it are then not reported by this agent)")
