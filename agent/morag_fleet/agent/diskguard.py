"""Stops claiming while the temp dir's disk is full, so a full disk does not fail every job.

Why: a job that cannot write its download fails in a moment, the slot is free again, and the
agent claims the next job, which fails the same way: a full disk would burn the whole queue.
So claims wait while `temp_dir` has less free space than `min_free_disk_mb`, and a job that
ran out of space (ENOSPC) pauses claiming until space is back: more free space than there was
when that job failed, by at least the floor (or `RESUME_MARGIN_BYTES`, whichever is larger).

The poller reads `is_set()` as its pause flag, so the controller's drain and a full disk stop
claims the same way; `reason` tells them apart in the heartbeat.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from morag_fleet.log import get_logger

log = get_logger(__name__)
DISK_FULL = "disk full"
RESUME_MARGIN_BYTES = 64 * 1024**2
RECHECK_SECONDS = 0.2  # free space is asked at most this often
NO_SPACE_MARKERS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT), "[Errno 28]")


class PauseFlag(Protocol):
    """What the poller needs of its pause: a `threading.Event` or a `DiskGuard`."""

    def is_set(self) -> bool: ...


def is_no_space(error: str | None) -> bool:
    """Whether a job's error says it ran out of disk space (from any step, in any process)."""
    return bool(error) and any(marker in error for marker in NO_SPACE_MARKERS)


class DiskGuard:
    def __init__(self, path: Path, min_free_mb: int, drained: threading.Event,
                 on_change: Callable[[bool, int], None] | None = None) -> None:
        self._path = path
        self._floor = min_free_mb * 1024**2
        self._drained = drained  # the controller's drain: claims stop for it too
        self._on_change = on_change
        self._lock = threading.RLock()  # on_change may read `reason`
        self._resume_at: int | None = None  # set after ENOSPC: free bytes needed to claim again
        self._full = False
        self._checked = 0.0

    def is_set(self) -> bool:
        """True while claims must wait: drained by the controller, or the disk is full."""
        return self._drained.is_set() or self.full

    @property
    def full(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked >= RECHECK_SECONDS:
                self._update(self._free())
            return self._full

    @property
    def reason(self) -> str | None:
        return DISK_FULL if self.full else None

    def note_result(self, error: str | None) -> None:
        """Called with each finished job's error (after its temp files are gone)."""
        if not is_no_space(error):
            return
        with self._lock:
            free = self._free()
            self._resume_at = free + max(self._floor, RESUME_MARGIN_BYTES)
            log.error("disk_full", path=str(self._path), free_mb=free // 2**20,
                      resume_at_mb=self._resume_at // 2**20, error=error)
            self._update(free)

    def watch(self, emit: Callable[..., None]) -> Callable[..., None]:
        """Wraps a job-event emitter: a `spooled` failure is looked at before it is passed on."""
        def emit_and_note(job_id: str, phase: str, **fields: Any) -> None:
            if phase == "spooled" and not fields.get("success", True):
                self.note_result(fields.get("error"))
            emit(job_id, phase, **fields)

        return emit_and_note

    def _free(self) -> int:
        try:
            return shutil.disk_usage(self._path).free
        except OSError:
            return 0  # the temp dir is gone or unreadable: nothing can be downloaded either

    def _update(self, free: int) -> None:
        """Caller holds the lock."""
        self._checked = time.monotonic()
        needed = max(self._floor, self._resume_at or 0)
        full = free < needed if needed else False
        if full == self._full:
            return
        self._full = full
        if not full:
            self._resume_at = None
        if full:
            log.warning("claims_paused", reason=DISK_FULL, path=str(self._path),
                        free_mb=free // 2**20, needed_mb=needed // 2**20)
        else:
            log.info("claims_resumed", path=str(self._path), free_mb=free // 2**20)
        if self._on_change is not None:
            self._on_change(full, free)
