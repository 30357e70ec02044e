"""systemd readiness and watchdog through sd_notify; silent when not run by systemd."""

from __future__ import annotations

import os

import sdnotify


class SystemdNotifier:
    def __init__(self) -> None:
        self._enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self._enabled else None

    def notify(self, state: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(state)
