"""Ansible callback for the deploy tests: prints the slowest tasks at the end of a run, so a slow
deployment shows where its time went in the test log."""

from __future__ import annotations

import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_timer
    type: aggregate
    short_description: the slowest tasks of a run
    description: Prints the ten tasks that took longest, wall clock, at the end of the run.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._current: tuple[str, float] | None = None
        self._durations: list[tuple[float, str]] = []

    def _close(self) -> None:
        if self._current is not None:
            name, started = self._current
            self._durations.append((time.monotonic() - started, name))
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = (task.get_name(), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        total = sum(d for d, _ in self._durations)
        self._display.display(f"TASK TIMES (total {total:.1f}s, slowest first):")
        for duration, name in sorted(self._durations, reverse=True)[:10]:
            self._display.display(f"  {duration:7.1f}s  {name}")
