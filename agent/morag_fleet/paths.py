"""Where the fleet's programs keep state by default, so the agent and the controller agree."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir(name: str) -> Path:
    """/var/lib/<name> when run as root (the systemd units), else under $XDG_STATE_HOME
    (~/.local/state) for a person trying things out."""
    if os.geteuid() == 0:
        return Path("/var/lib") / name
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / name
