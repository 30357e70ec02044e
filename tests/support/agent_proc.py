"""Runs a real `morag-agent run` process with its own config, state and temp dirs, and reads
its JSON log lines, so tests can send it real signals and watch what it did."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = "tests.support.scripted_converters:ScriptedConverter"


class AgentProcess:
    def __init__(self, base_dir: Path, api_url: str, worker_id: str = "agent-1", slots: int = 2,
                 content_types: tuple[str, ...] = ("document",), **settings: Any) -> None:
        self.dir = base_dir / worker_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.worker_id = worker_id
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "agent.log"
        config: dict[str, Any] = {
            "worker_id": worker_id,
            "api_base_url": api_url,
            "content_types": list(content_types),
            "max_concurrent_jobs": slots,
            "poll_interval": 2,
            "long_poll_wait": 2,
            "state_dir": str(self.dir / "state"),
            "temp_dir": str(self.dir / "tmp"),
            "log_level": "DEBUG",
            "log_format": "json",
            "shutdown_grace": 30,
            "outbox_retry_max": 2,
        }
        config.update(settings)
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.env_extra: dict[str, str] = {}

    def start(self) -> AgentProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **self.env_extra)
        env.pop("NOTIFY_SOCKET", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "morag_fleet.cli.agent_main", "run",
             "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir,
        )
        log.close()
        # logged once the start-up self-test is done: loading models takes a while on 2 cores
        self.wait_for_event("agent_started", timeout=180)
        return self

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would; slot processes are killed too (they'd die with the host)."""
        assert self.proc is not None
        for pid in self.slot_pids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(timeout=30)

    def slot_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event
                and all(e.get(k) == v for k, v in match.items())]

    def wait_for_event(self, event: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        found = wait_until(lambda: self.find(event, **match), timeout,
                           f"{event} {match} in {self.log_path}")
        return found[0]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition",
               interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
