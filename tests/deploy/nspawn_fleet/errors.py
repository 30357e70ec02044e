"""Errors the harness raises with a message a person can act on."""

from __future__ import annotations

import os


class HarnessError(RuntimeError):
    """Something the harness needs is missing or broke; the message says what to do."""


def require_root() -> None:
    """Booting containers needs mounts, bridges and cgroups, so only root can run the harness."""
    if os.geteuid() != 0:
        raise HarnessError(
            "the deploy tests boot real systemd hosts (overlay mounts, a network bridge, "
            "systemd-nspawn) and must run as root; run them as root, or deselect them with "
            "-m 'not deploy'"
        )
