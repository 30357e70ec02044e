"""Stopping multiprocessing's resource tracker before the agent exits.

Spawned slot and check processes make multiprocessing start a helper, the resource tracker, that
ignores SIGTERM and only exits once the last holder of its pipe is gone. systemd's KillMode=mixed
sends SIGTERM to the agent alone and SIGKILLs whatever is left once the agent exits, so a tracker
still reading its pipe's end was killed on every stop. Closing the pipe ourselves and reaping the
tracker lets it finish its own clean-up while the agent still runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from multiprocessing import resource_tracker


def stop_resource_tracker(timeout: float = 5.0) -> bool:
    """Close the tracker's pipe and wait for it to exit; True when none is left running.

    Gives up after `timeout` (a child still holding the pipe keeps the tracker alive), so a stop
    never hangs here; the service manager then ends the tracker as before."""
    tracker = resource_tracker._resource_tracker
    with tracker._lock:
        fd, pid = getattr(tracker, "_fd", None), getattr(tracker, "_pid", None)
        if fd is None or pid is None:
            return True
        with contextlib.suppress(OSError):
            os.close(fd)
        tracker._fd = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # already reaped elsewhere
                done = pid
            if done:
                tracker._pid = None
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
