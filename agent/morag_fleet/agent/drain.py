"""The operator's drain: claims stop, with a note saying why and an optional time to resume.

Why the agent keeps the expiry itself: the agent is the one that must claim again, and a
controller that is down or restarting at the expiry time must not leave it idle for longer. Why it
is written to the state directory: a drained host is often drained for maintenance that restarts
the agent, and it must not start claiming again before the operator's time is up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from morag_fleet.log import get_logger

log = get_logger(__name__)
FILE_NAME = "drain.json"
MAX_NOTE_LEN = 500


class DrainState:
    """Sets and clears `flag` (the pause the poller honours) together with the note and expiry."""

    def __init__(self, state_dir: Path, flag: threading.Event) -> None:
        self._path = state_dir / FILE_NAME
        self._flag = flag
        self._lock = threading.Lock()
        self.note: str | None = None
        self.until: float | None = None
        self.since: float | None = None
        self._restore()

    def drain(self, note: Any = None, until: Any = None) -> None:
        with self._lock:
            self.note = _clean_note(note)
            self.until = _clean_until(until)
            self.since = time.time()
            self._flag.set()
            self._save()

    def resume(self) -> None:
        with self._lock:
            self.note = self.until = self.since = None
            self._flag.clear()
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    def expire(self, now: float | None = None) -> bool:
        """Resume when the drain's time is up; True when this call resumed the agent."""
        until = self.until
        if until is None or (time.time() if now is None else now) < until:
            return False
        log.info("drain_expired", note=self.note, until=until)
        self.resume()
        return True

    def view(self) -> dict[str, Any]:
        """The heartbeat's drain fields (empty while not drained)."""
        if not self._flag.is_set():
            return {}
        return {"drain_note": self.note, "drain_until": self.until}

    def _save(self) -> None:
        data = {"note": self.note, "until": self.until, "since": self.since}
        tmp = self._path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self._path)
        except OSError as exc:  # the drain still holds for this run
            log.warning("drain_not_saved", path=str(self._path), error=str(exc))

    def _restore(self) -> None:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("drain_file_unreadable", path=str(self._path), error=str(exc))
            data = {}
        if not isinstance(data, dict):
            data = {}
        self.note = _clean_note(data.get("note"))
        self.until = _clean_until(data.get("until"))
        self.since = _clean_until(data.get("since"))
        self._flag.set()
        log.warning("drained_at_start", note=self.note, until=self.until,
                    hint="`morag-fleet resume AGENT` to claim again")


def _clean_note(note: Any) -> str | None:
    if not isinstance(note, str) or not note.strip():
        return None
    return "".join(c if c.isprintable() else " " for c in note.strip())[:MAX_NOTE_LEN]


def _clean_until(until: Any) -> float | None:
    if type(until) not in (int, float) or not math.isfinite(until) or until <= 0:
        return None
    return float(until)
