"""Trivial-job throughput of one agent with 4 slots, against a bare client loop that makes the
same calls (long poll, download, text conversion, result PUT) from 4 threads, with the same
`MoragClient` and `TextConverter` but no journal, no slot processes and no telemetry: the price
of the agent's guarantees.

Same reference server, same run, rounds in pairs (bare then agent, then agent then bare, ...): the
verdict is the median of the pairs' agent/bare ratios, since the two rounds of a pair ran under
the same conditions on a shared machine whose speed drifts by a third within minutes. Both consumers
are separate processes (the bare loop is this script with `--bare-loop`). Each round first
converts a few warm-up jobs (slot processes start lazily), then the consumer is frozen with
SIGSTOP while 300 small .txt jobs are queued, and thawed with SIGCONT; the rate is 300 jobs over
the time from SIGCONT to the last result (the server's clock, same host).

    .venv/bin/python tests/bench/bench_throughput.py [--profile]

`--profile` runs one more agent round under py-spy (if installed) and prints where the agent's
main process spends its time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from _common import (
    cpu_seconds,
    create_job,
    epoch,
    note,
    table,
    text_sources,
    tree,
    verdict,
    wait_final,
    workspace,
)
from tests.support.agent_proc import AgentProcess
from tests.support.jobserver import JobServer, running_jobserver

from morag_fleet.convert.text import TextConverter
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.models import JobResult
from morag_fleet.settings import AgentSettings

SLOTS = 4
JOBS = 300
WARMUP = 8
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))  # pairs
LONG_POLL = 5.0
TARGET_SHARE = 0.80


class BareLoop:
    """4 threads, each: long poll, download, convert in-thread, PUT; nothing else."""

    def __init__(self, api_url: str, work_dir: Path) -> None:
        self.settings = AgentSettings(worker_id="bare-loop", api_base_url=api_url,
                                      max_concurrent_jobs=SLOTS, long_poll_wait=LONG_POLL,
                                      temp_dir=work_dir, state_dir=work_dir / "state")
        self.client = MoragClient(self.settings)
        self.converter = TextConverter()
        self.work_dir = work_dir
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                         for i in range(SLOTS)]

    def __enter__(self) -> BareLoop:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=LONG_POLL + 30)
        self.client.close()

    def _loop(self, index: int) -> None:
        while not self._stop.is_set():
            job = self.client.poll(["document"], wait=LONG_POLL)
            if job is None:
                continue
            job_dir = self.work_dir / f"{index}-{job.job_id}"
            job_dir.mkdir()
            try:
                source = self.client.download(job, job_dir)
                info = {"file_name": source.original_name, "content_type": job.content_type,
                        "mime_type": source.mime_type, "file_size": source.size,
                        "checksum": source.sha256}
                result = self.converter.convert(source.path, {}, info, lambda *_: None)
                self.client.submit_result(job.job_id, JobResult(
                    True, content=result.markdown, metadata=result.metadata))
            finally:
                shutil.rmtree(job_dir, ignore_errors=True)


@dataclass
class Round:
    rate: float  # jobs/s
    consumer_cpu_ms: float  # per job, the consumer's main process
    children_cpu_ms: float  # per job, its child processes (the agent's slots)
    server_cpu_ms: float  # per job


def one_round(server: JobServer, sources: list[Path], consumer_pid: int) -> Round:
    """Warm up the running consumer, queue the jobs while it is frozen, then thaw it; jobs/s
    on the server's clock, and the CPU each side spent per job."""
    wait_final(server.url, [create_job(server.url, p) for p in sources[:WARMUP]], 60)
    assert server.proc is not None
    os.kill(consumer_pid, signal.SIGSTOP)
    try:
        ids = [create_job(server.url, p) for p in sources[WARMUP:]]
    finally:
        consumer, serving = tree(consumer_pid), tree(server.proc.pid)
        cpu0 = cpu_seconds(consumer[:1]), cpu_seconds(consumer[1:]), cpu_seconds(serving)
        thawed = time.time()
        os.kill(consumer_pid, signal.SIGCONT)
    statuses = wait_final(server.url, ids, 300)
    cpu1 = cpu_seconds(consumer[:1]), cpu_seconds(consumer[1:]), cpu_seconds(serving)
    failed = [s for s in statuses if s["status"] != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs failed, e.g. {failed[0]['error_message']}")
    rate = len(ids) / (max(epoch(s["completed_at"]) for s in statuses) - thawed)
    return Round(rate, *((after - before) * 1000 / len(ids) for before, after in zip(
        cpu0, cpu1, strict=True)))


@contextlib.contextmanager
def agent_running(tmp: Path, server: JobServer, name: str) -> Iterator[AgentProcess]:
    agent = AgentProcess(tmp / "agents", server.url, worker_id=name, slots=SLOTS,
                         long_poll_wait=LONG_POLL, log_level="INFO").start()
    try:
        yield agent
    finally:
        agent.stop()


def bare_round(tmp: Path, server: JobServer, sources: list[Path], n: int) -> Round:
    work = tmp / f"bare-{n}"
    proc = subprocess.Popen([sys.executable, __file__, "--bare-loop", server.url, str(work)])
    try:
        return one_round(server, sources, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def agent_round(tmp: Path, server: JobServer, sources: list[Path], n: int) -> Round:
    with agent_running(tmp, server, f"agent-{n}") as agent:
        assert agent.proc is not None
        return one_round(server, sources, agent.proc.pid)


def profiled_round(tmp: Path, server: JobServer, sources: list[Path]) -> None:
    """py-spy on the agent's main process during one round: where its time goes."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        note("py-spy not installed (.venv/bin/pip install py-spy); no profile")
        return
    out = tmp / "profile.txt"
    with agent_running(tmp, server, "agent-profiled") as agent:
        assert agent.proc is not None
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(agent.proc.pid), "--format", "raw", "--threads",
             "--output", str(out), "--duration", "30", "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rate = one_round(server, sources, agent.proc.pid).rate
        finally:
            recorder.send_signal(2)
            recorder.wait(timeout=60)
    note(f"\nprofiled round: {rate:.1f} jobs/s (py-spy slows it)")
    print_profile(out)


def print_profile(raw: Path) -> None:
    """Own-time and total-time leaders from py-spy's collapsed stacks."""
    if not raw.exists():
        note("py-spy wrote no profile")
        return
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + int(count)
    samples = sum(own.values()) or 1

    def top(counts: dict[str, int]) -> list[list[object]]:
        return [[f"{n * 100 / samples:.1f} %", frame[:110]]
                for frame, n in sorted(counts.items(), key=lambda kv: -kv[1])[:15]]

    table("py-spy, agent main process: own time (samples holding the GIL: its Python CPU)",
          ["share", "function"], top(own))
    ours = {frame: n for frame, n in total.items() if "morag_fleet" in frame}
    table("py-spy, agent main process: time inside each morag_fleet function (inclusive)",
          ["share", "function"], top(ours))


def run_bare_loop(api_url: str, work_dir: str) -> int:
    """The `--bare-loop` child: runs until SIGTERM (blocked first, so threads inherit that)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    with BareLoop(api_url, Path(work_dir)):
        signal.sigwait({signal.SIGTERM})
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--bare-loop"]:
        return run_bare_loop(sys.argv[2], sys.argv[3])
    profile = "--profile" in sys.argv
    with workspace("throughput") as tmp, running_jobserver(tmp / "server") as server:
        sources = text_sources(tmp / "src", WARMUP + JOBS)
        rounds: dict[str, list[Round]] = {"bare": [], "agent": []}
        runs: list[tuple[str, Callable[..., Round]]] = [("bare", bare_round),
                                                        ("agent", agent_round)]
        for n in range(ROUNDS):
            for name, run in runs if n % 2 == 0 else runs[::-1]:
                note(f"pair {n + 1}: {name} ...")
                rounds[name].append(run(tmp, server, sources, n))
        if profile:
            profiled_round(tmp, server, sources)

    labels = {"bare": "bare client loop, 4 threads", "agent": f"agent, {SLOTS} slots"}
    rows = []
    for name, done in rounds.items():
        for n, r in enumerate(done):
            rows.append([labels[name], n + 1, f"{r.rate:.1f}", f"{r.consumer_cpu_ms:.1f}",
                         f"{r.children_cpu_ms:.1f}", f"{r.server_cpu_ms:.1f}"])
    table(f"{JOBS} trivial .txt jobs, {SLOTS} consumers, reference server",
          ["consumer", "pair", "jobs/s", "CPU ms/job: consumer", "its children", "server"], rows)
    pairs = [a.rate / b.rate for a, b in zip(rounds["agent"], rounds["bare"], strict=True)]
    share = statistics.median(pairs)
    best = {name: max(r.rate for r in done) for name, done in rounds.items()}
    cpu = {name: statistics.median(r.consumer_cpu_ms + r.children_cpu_ms for r in done)
           for name, done in rounds.items()}
    table("Targets", ["check", "measured", "target", "result"], [
        ["agent / bare loop, median of the pairs",
         f"{share * 100:.0f} % (pairs: {', '.join(f'{p * 100:.0f}' for p in pairs)})",
         f">= {TARGET_SHARE * 100:.0f} %", verdict(share >= TARGET_SHARE)],
        ["agent / bare loop, best rounds",
         f"{best['agent']:.1f} / {best['bare']:.1f} = "
         f"{best['agent'] / best['bare'] * 100:.0f} %", "(information)", "-"],
        ["consumer CPU per job, agent / bare (medians)",
         f"{cpu['agent']:.1f} / {cpu['bare']:.1f} ms = {cpu['agent'] / cpu['bare']:.2f}x",
         "(information)", "-"]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
