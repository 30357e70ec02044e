"""Control-side helpers for the deploy tests: running the playbook, reading its results, the
reference job server on the bridge, and waiting on conditions."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
JOBS = "/api/v1/remote-jobs"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.MULTILINE)
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], deadline_s: float = 120.0,
             every_s: float = 1.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        try:
            last = check()
        except Exception as exc:  # a host or server still coming up: try again
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}; last: {last!r}")


@dataclass
class PlaybookRun:
    rc: int
    output: str
    results: list[dict[str, Any]]

    def recap(self) -> dict[str, dict[str, int]]:
        return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]),
                       "failed": int(m[5])} for m in RECAP.finditer(self.output)}

    def changed_tasks(self, host: str) -> set[str]:
        return {r["task"] for r in self.results if r["host"] == host and r["changed"]}

    def messages(self, task: str, host: str) -> list[Any]:
        return [r["msg"] for r in self.results if r["task"] == task and r["host"] == host]


def run_playbook(inventory: Path, *args: str, playbook: str = "ansible/deploy.yml",
                 timeout: float = 1800.0) -> PlaybookRun:
    """ansible-playbook as the operator runs it: from the repository root (so the project's
    ansible.cfg applies) with an inventory directory of their own."""
    results_file = inventory.parent / "task-results.json"
    results_file.unlink(missing_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "ANSIBLE_CONFIG"}
    env |= {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "tests/deploy/callback_plugins"),
           "ANSIBLE_CALLBACKS_ENABLED": "task_timer,task_results",
           "MORAG_TEST_TASK_RESULTS": str(results_file),
           "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), playbook, *args]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    output = done.stdout + done.stderr
    failures = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]
    print("\n".join(failures)[:8000] + "\n" + output[-6000:])
    print(f"[deploy] {' '.join(argv[1:])}: rc={done.returncode} in "
          f"{time.monotonic() - started:.0f}s")
    results = json.loads(results_file.read_text()) if results_file.exists() else []
    return PlaybookRun(done.returncode, output, results)


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class BridgeJobServer:
    """`morag-fleet jobserver` from the repo's venv, bound to the bridge so the hosts reach it;
    fault injection on (the rolling-update test slows a download with it)."""

    def __init__(self, address: str, data_dir: Path) -> None:
        self.address, self.data_dir = address, data_dir
        self.port = free_port(address)
        self.url = f"http://{address}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BridgeJobServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "jobserver.log", "wb")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "morag-fleet"), "jobserver", "--host", self.address, "--port",
             str(self.port), "--data-dir", str(self.data_dir), "--enable-fault-injection"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for("the job server", lambda: requests.get(f"{self.url}{JOBS}/_stats",
                                                        timeout=2).ok, 60, 0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def upload(self, path: Path, content_type: str = "document") -> str:
        """Queue a file with `morag-fleet submit` (the operator's way) and return the job id."""
        done = subprocess.run([str(VENV_BIN / "morag-fleet"), "submit", str(path), "--type",
                               content_type, "--api-url", self.url], capture_output=True,
                              text=True, timeout=60, check=True)
        return done.stdout.strip().split()[-1]

    def status(self, job_id: str) -> dict[str, Any]:
        answer = requests.get(f"{self.url}{JOBS}/{job_id}/status", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def result(self, job_id: str) -> dict[str, Any]:
        answer = requests.get(f"{self.url}{JOBS}/{job_id}/result", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        requests.post(f"{self.url}/_faults", json=rules, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_faults", timeout=10).raise_for_status()
