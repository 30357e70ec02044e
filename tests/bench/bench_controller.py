"""Controller benchmarks, printed as tables (not collected by pytest):

1. ingest: heartbeats/s the controller takes from 10,000 simulated agents (two simulator
   processes, 5,000 real DEALER connections each, plaintext), at full blast and at paced rates,
   with the number of heartbeats lost at each rate, against the target of 50,000 msg/s on one
   core. On a machine with 2+ CPUs the controller (all its threads) is pinned to CPU 0 and the
   simulators to the other CPUs, so "one core" is literal; msg per controller CPU-second is
   shown too, because other processes on a shared machine can still take CPU 0 away;
2. `morag-fleet status --json` latency with 10,000 agents known;
3. controller RSS per 1,000 agents;
4. agent-side CPU of the real Publisher at a 1 s and a 5 s heartbeat.

    .venv/bin/python tests/bench/bench_controller.py
"""

from __future__ import annotations

import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.controller.fleet import ControllerProc, PublisherProc, env  # noqa: E402
from tests.support.process import wait_for  # noqa: E402

from morag_fleet.controller.control import ControlClient  # noqa: E402

AGENTS = 10_000
SIMS = 2  # 5,000 connections each: a process needs two file descriptors per DEALER
BLAST_SECONDS = 6.0
PACED = (25_000, 50_000)
PACED_SECONDS = 6.0
TARGET = 50_000  # heartbeats/s on one core: the controller's design target
SAMPLE_EVERY = 0.05


def table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(widths[i]) for i, c in enumerate(row)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def cpu_split() -> tuple[set[int], set[int]]:
    """(controller CPUs, simulator CPUs): one core for the controller when there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[0]}, set(cpus[1:])


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (the ZeroMQ I/O thread included) onto `cpus`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


class Sim:
    def __init__(self, endpoint: str, offset: int, count: int, cpus: set[int]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.fleet_sim", "--endpoint", endpoint,
             "--agents", str(count), "--offset", str(offset),
             "--cpus", ",".join(map(str, sorted(cpus)))], cwd=REPO, env=env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def ready(self) -> bool:
        return bool(self.selector.select(0))

    def read(self) -> dict:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def run(self, rate: float, seconds: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {rate} {seconds}\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def heartbeats(client: ControlClient) -> int:
    return int(client.call("stats")["counts"].get("frame:heartbeat", 0))


def busy(cpus: set[int]) -> float:
    """CPU-seconds the machine has spent on `cpus` so far (all processes)."""
    times = psutil.cpu_times(percpu=True)
    return sum(sum(times[c]) - times[c].idle - times[c].iowait for c in cpus)


def measure_run(client: ControlClient, sims: list[Sim], rate: float, seconds: float,
                ctl: psutil.Process, ctl_cpus: set[int]) -> dict[str, float]:
    """Offer `rate` msg/s (0: as fast as the simulators can) for `seconds`, sampling the
    controller's heartbeat count every 50 ms until it stops moving. Its rate is judged from the
    first to the last sample that moved, and per second of its own CPU time; `others` is the
    share of the controller's CPU that other processes (this machine is shared) took."""
    base = heartbeats(client)
    cpu_before, busy_before = sum(ctl.cpu_times()[:2]), busy(ctl_cpus)
    started = time.monotonic()
    for sim in sims:
        sim.run(rate / len(sims), seconds)
    samples = [(started, base)]
    sent_at = None
    while True:
        time.sleep(SAMPLE_EVERY)
        samples.append((time.monotonic(), heartbeats(client)))
        if sent_at is None and all(sim.ready() for sim in sims):
            sent_at = samples[-1][0]
        quiet = [t for t, count in samples if count == samples[-1][1]]
        if sent_at is not None and samples[-1][0] - quiet[0] > 1.0:
            break
    cpu = sum(ctl.cpu_times()[:2]) - cpu_before
    others = busy(ctl_cpus) - busy_before - cpu
    results = [sim.read() for sim in sims]
    moved = [t for (t, count), (_, before) in zip(samples[1:], samples, strict=False)
             if count != before]
    first, last = moved[0] - SAMPLE_EVERY, moved[-1]
    sent = sum(r["sent"] for r in results)
    received = samples[-1][1] - base
    return {"sent": sent, "send_rate": sent / max(r["elapsed"] for r in results),
            "refused": sum(r["again"] for r in results),
            "received": received, "lost": sent - received,
            "wall_rate": received / (last - first), "cpu_rate": received / max(cpu, 1e-9),
            "cpu": cpu / (last - first), "drain": max(0.0, last - sent_at),
            "others": max(0.0, others) / (samples[-1][0] - started) / len(ctl_cpus)}


def bench_ingest(base: Path) -> tuple[ControllerProc, list[Sim], dict[str, float]]:
    controller = ControllerProc(base).start()
    assert controller.proc is not None
    ctl_cpus, sim_cpus = cpu_split()
    pin_process(controller.proc.pid, ctl_cpus)
    ctl = psutil.Process(controller.proc.pid)
    rss_empty = ctl.memory_info().rss
    client = ControlClient(controller.state_dir, timeout=60)
    per = AGENTS // SIMS
    sims = [Sim(controller.endpoint, i * per, per, sim_cpus) for i in range(SIMS)]
    for sim in sims:
        sim.read()
    wait_for(lambda: client.call("stats")["agents"] >= AGENTS, 180, "10,000 agents to say hello")
    rss_known = ctl.memory_info().rss
    rows = [["max", measure_run(client, sims, 0, BLAST_SECONDS, ctl, ctl_cpus)]]
    for rate in PACED:
        rows.append([f"{rate:,}", measure_run(client, sims, rate, PACED_SECONDS, ctl, ctl_cpus)])
    where = (f"controller pinned to CPU {min(ctl_cpus)}, simulators on CPU "
             f"{','.join(map(str, sorted(sim_cpus)))}" if ctl_cpus != sim_cpus
             else "controller and simulators sharing one CPU")
    table(f"Controller ingest, {AGENTS:,} simulated agents ({SIMS} simulator processes with "
          f"{per:,} DEALER connections each, plaintext; {where})",
          ["offered msg/s", "sent", "sent msg/s", "refused", "received", "lost",
           "taken in msg/s (wall)", "msg per controller CPU-s", "controller CPU",
           "other processes on its CPU", "drain"],
          [[label, r["sent"], f"{r['send_rate']:,.0f}", r["refused"], r["received"], r["lost"],
            f"{r['wall_rate']:,.0f}", f"{r['cpu_rate']:,.0f}", f"{100 * r['cpu']:.0f}%",
            f"{100 * r['others']:.0f}%", f"{r['drain']:.1f} s"] for label, r in rows])
    blast, at_target = rows[0][1], rows[-1][1]
    table(f"Target: >= {TARGET:,} heartbeats/s on one core, none lost below that rate",
          ["check", "measured", "verdict"], [
              [f"offered {TARGET:,} msg/s: taken in (wall clock, >= 98% of offered)",
               f"{at_target['wall_rate']:,.0f} msg/s",
               verdict(at_target["wall_rate"] >= 0.98 * at_target["send_rate"])],
              [f"offered {TARGET:,} msg/s: msg per controller CPU-second",
               f"{at_target['cpu_rate']:,.0f}", verdict(at_target["cpu_rate"] >= TARGET)],
              [f"offered {TARGET:,} msg/s: lost + refused",
               f"{at_target['lost']} + {at_target['refused']}",
               verdict(at_target["lost"] == 0 and at_target["refused"] == 0)],
              ["full blast: taken in (wall clock)", f"{blast['wall_rate']:,.0f} msg/s",
               verdict(blast["wall_rate"] >= TARGET)],
              ["full blast: msg per controller CPU-second", f"{blast['cpu_rate']:,.0f}",
               verdict(blast["cpu_rate"] >= TARGET)],
              ["lost in all runs", str(sum(r["lost"] for _, r in rows)),
               verdict(all(r["lost"] == 0 for _, r in rows))]])
    return controller, sims, {"rss_empty": rss_empty, "rss_known": rss_known,
                              "rss_full": ctl.memory_info().rss}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_status(controller: ControllerProc) -> list[list[object]]:
    client = ControlClient(controller.state_dir, timeout=60)
    in_process = []
    for _ in range(5):
        t = time.perf_counter()
        data = client.call("status")
        in_process.append(time.perf_counter() - t)
    assert len(data["agents"]) >= AGENTS
    cli = []
    for _ in range(3):
        t = time.perf_counter()
        result = controller.cli("status", "--json")
        cli.append(time.perf_counter() - t)
        assert result.returncode == 0, result.stderr
    return [["control call (status data)", f"{1000 * statistics.median(in_process):.0f} ms"],
            ["`morag-fleet status --json` (incl. Python start)",
             f"{1000 * statistics.median(cli):.0f} ms"],
            ["status --json output size", f"{len(result.stdout) / 1e6:.1f} MB"]]


def bench_publisher(base: Path, endpoint: str) -> list[list[object]]:
    rows = []
    for interval in (1.0, 5.0):
        pub = PublisherProc(base, f"cpu-{interval:g}", endpoint, interval=interval)
        proc = psutil.Process(pub.proc.pid)
        time.sleep(3)  # start-up (imports) is not telemetry
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(20)
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        wall = time.monotonic() - t0
        status = pub.link_status()
        assert status["connected"]
        tick = 0.01 / wall  # psutil counts CPU time in 10 ms clock ticks
        shown = f"{1000 * cpu / wall:.2f} ms/s" if cpu else f"< {1000 * tick:.1f} ms/s"
        share = f"{100 * cpu / wall:.2f}%" if cpu else f"< {100 * tick:.2f}%"
        rows.append([f"{interval:g} s", shown, share, f"{proc.memory_info().rss / 2**20:.0f} MiB"])
        pub.kill()
    return rows


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="mfb-"))
    controller, sims, memory = bench_ingest(base)
    try:
        table("Status with 10,000 agents", ["what", "median"], bench_status(controller))
        per_1000 = (memory["rss_known"] - memory["rss_empty"]) / (AGENTS / 1000) / 2**20
        table("Controller memory", ["what", "value"], [
            ["RSS with no agents", f"{memory['rss_empty'] / 2**20:.0f} MiB"],
            [f"RSS with {AGENTS:,} agents connected (after hello)",
             f"{memory['rss_known'] / 2**20:.0f} MiB"],
            ["RSS per 1,000 connected agents", f"{per_1000:.1f} MiB"],
            ["RSS after the ingest runs (queues grew under overload)",
             f"{memory['rss_full'] / 2**20:.0f} MiB"]])
        for sim in sims:
            sim.close()
        table("Agent-side telemetry cost (real Publisher process, idle agent, 20 s)",
              ["heartbeat", "CPU", "of one core", "publisher process RSS"],
              bench_publisher(base, controller.endpoint))
    finally:
        for sim in sims:
            sim.close()
        controller.stop(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
