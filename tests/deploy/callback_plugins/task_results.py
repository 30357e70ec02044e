"""Ansible callback for the deploy tests: writes every task result (task name, host, status,
changed, msg) as JSON to the file named by MORAG_TEST_TASK_RESULTS, for assertions on a run."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_results
    type: aggregate
    short_description: task results as a JSON file
    description: Writes the results of all tasks to the file in MORAG_TEST_TASK_RESULTS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._results: list[dict[str, object]] = []

    def _record(self, result, status: str) -> None:
        data = result._result
        self._results.append({"task": result._task.get_name(), "host": result._host.get_name(),
                              "status": status, "changed": bool(data.get("changed")),
                              "msg": data.get("msg")})

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("MORAG_TEST_TASK_RESULTS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self._results, handle, default=str)
