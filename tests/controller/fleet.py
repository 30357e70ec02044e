"""A real controller process and real publisher processes for the controller tests."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support.process import REPO_ROOT, free_port, wait_for

MAIN_MODULE = "morag_fleet.cli.fleet_main"  # the real `morag-fleet` entry point


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def fleet_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`morag-fleet ARGS` (through `python -m`), capturing its output."""
    return subprocess.run([sys.executable, "-m", MAIN_MODULE, *args], cwd=REPO_ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


class ControllerProc:
    def __init__(self, base: Path, plaintext: bool = True, port: int | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.state_dir = base / "ctl"
        self.port = port or free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.plaintext = plaintext
        self.extra = extra
        self.log_path = base / "controller.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProc:
        argv = [sys.executable, "-m", MAIN_MODULE, "controller", "--bind",
                f"tcp://127.0.0.1:{self.port}", "--state-dir", str(self.state_dir),
                "--log-format", "json", *self.extra]
        if self.plaintext:
            argv.append("--plaintext")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env(), stdout=log, stderr=log)
        wait_for(self._answers, 60, "the controller's control socket")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"controller exited {self.proc.returncode}:\n{self.log()}")
        return fleet_cli("status", "--state-dir", str(self.state_dir), "--timeout", "2"
                         ).returncode == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return fleet_cli(*args, "--state-dir", str(self.state_dir))

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def stats(self) -> dict[str, int]:
        return self.json("status")["controller"]

    def counts(self) -> dict[str, int]:
        from morag_fleet.controller.control import ControlClient

        return ControlClient(self.state_dir, timeout=10).call("stats")["counts"]

    def agent(self, name: str) -> dict[str, Any] | None:
        for row in self.json("status")["agents"]:
            if row["agent"] == name:
                return row
        return None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""


class PublisherProc:
    """tests/controller/publisher_proc.py in a child process; its stdout lines land in a queue."""

    def __init__(self, base: Path, name: str, endpoint: str, interval: float = 0.5,
                 keys: tuple[Path, Path] | None = None) -> None:
        self.name = name
        argv = [sys.executable, "-m", "tests.controller.publisher_proc", "--controller", endpoint,
                "--name", name, "--state-dir", str(base), "--interval", str(interval)]
        if keys is None:
            argv.append("--plaintext")
        else:
            argv += ["--agent-key", str(keys[0]), "--controller-key", str(keys[1])]
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def send(self, **op: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(op) + "\n")
        self.proc.stdin.flush()

    def expect(self, kind: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        for line in self.seen:
            if line["type"] == kind and all(line.get(k) == v for k, v in match.items()):
                self.seen.remove(line)
                return line
        while True:
            line = self.lines.get(timeout=timeout)
            if line["type"] == kind and all(line.get(k) == v for k, v in match.items()):
                return line
            self.seen.append(line)

    def link_status(self) -> dict[str, Any]:
        self.send(op="status")
        return self.expect("status")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(op="close")
            self.expect("closed")
            self.proc.wait(30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
