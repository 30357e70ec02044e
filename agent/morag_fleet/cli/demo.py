"""`morag-fleet demo`: the whole fleet on this machine, with real conversions.

It starts the reference job server, a controller and two agents as real processes on loopback,
queues one locally generated sample of every content type, prints the markdown each produced and
ends with `morag-fleet status`. Everything is stopped again, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from morag_fleet.jobserver.submit import JobClient

DEMO_TYPES = ("document", "image", "audio", "video", "web", "youtube")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run the whole fleet on this machine with samples")
    p.add_argument("--agents", type=int, default=2, help="number of agents (default 2)")
    p.add_argument("--work-dir", type=Path, default=None, help="keep files here (default: temp)")
    p.add_argument("--lines", type=int, default=14, help="markdown lines shown per result")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for results")
    p.set_defaults(func=run_demo)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Fleet:
    """The demo's processes; `close` stops them in reverse order, politely first."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, proc))
        return proc

    def close(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            requests.get(url, timeout=2)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def agent_config(work: Path, name: str, api_url: str, controller: str) -> Path:
    config = {
        "worker_id": name, "api_base_url": api_url, "max_concurrent_jobs": 2,
        "poll_interval": 2, "state_dir": str(work / name / "state"),
        "temp_dir": str(work / name / "tmp"), "controller": controller,
        "telemetry_plaintext": True, "heartbeat_interval": 1, "log_format": "json",
        "converter_options": {"web": {"allow_private": True},
                              "youtube": {"allow_private": True}},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def queue_samples(client: JobClient, samples: dict[str, Path]) -> dict[str, str]:
    return {content_type: client.upload(samples[content_type], content_type, {})
            for content_type in DEMO_TYPES}


def show_results(client: JobClient, jobs: dict[str, str], lines: int, timeout: float) -> int:
    failures = 0
    deadline = time.monotonic() + timeout
    for content_type, job_id in jobs.items():
        answer = client.wait_for_result(job_id, deadline)
        print(f"\n===== {content_type} (job {job_id}): {answer['status']} =====")
        if answer["status"] != "completed":
            failures += 1
            print(f"error: {answer.get('error_message')}")
            continue
        content = (answer.get("content") or "").splitlines()
        print("\n".join(content[:lines]))
        if len(content) > lines:
            print(f"... ({len(content) - lines} more lines)")
    return failures


def run_demo(args: argparse.Namespace) -> int:
    from morag_fleet.samples import make_samples, serve_samples

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="morag-fleet-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    exe = [sys.executable, "-m"]
    fleet = Fleet(work)
    try:
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        server = fleet.spawn("jobserver", [*exe, "morag_fleet.cli.fleet_main", "jobserver",
                                           "--host", "127.0.0.1", "--port", str(api_port),
                                           "--data-dir", str(work / "server")])
        wait_http(api_url + "/api/v1/remote-jobs/_stats", server)
        controller = f"tcp://127.0.0.1:{free_port()}"
        state_dir = work / "controller"
        fleet.spawn("controller", [*exe, "morag_fleet.cli.fleet_main", "controller", "--bind",
                                   controller, "--state-dir", str(state_dir), "--plaintext"])
        print(f"job server {api_url}, controller {controller}, work dir {work}")
        for n in range(1, args.agents + 1):
            config = agent_config(work, f"demo-agent-{n}", api_url, controller)
            fleet.spawn(f"demo-agent-{n}", [*exe, "morag_fleet.cli.agent_main", "run",
                                            "--config", str(config)])
        client = JobClient(api_url)
        sample_dir = work / "samples"
        sample_dir.mkdir(exist_ok=True)
        with serve_samples(sample_dir) as base_url:  # web and YouTube samples are URLs here
            print("generating samples ...")
            jobs = queue_samples(client, make_samples(sample_dir, base_url))
            print(f"queued {len(jobs)} jobs: {', '.join(jobs)}")
            failures = show_results(client, jobs, args.lines, args.timeout)
        print("\n===== morag-fleet status =====")
        time.sleep(1.5)  # one more heartbeat so the counters include the last job
        subprocess.run([*exe, "morag_fleet.cli.fleet_main", "status", "--state-dir",
                        str(state_dir)], check=False)
        return 1 if failures else 0
    finally:
        fleet.close()
