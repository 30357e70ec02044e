"""Controller benchmarks, printed as tables (not collected by pytest):

1. ingest: heartbeats/s the controller takes from 10,000 simulated agents (two simulator
   processes, 5,000 real DEALER connections each), at full blast and at paced rates, with the
   number of heartbeats lost at each rate;
2. `morag-fleet status --json` latency with 10,000 agents known;
3. controller RSS per 1,000 agents;
4. agent-side CPU of the real Publisher at a 1 s and a 5 s heartbeat.

    .venv/bin/python tests/bench/bench_controller.py
"""

from __future__ import annotations

import json
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
SIMS = 2
BLAST_SECONDS = 5.0
PACED = (20_000, 50_000)
PACED_SECONDS = 5.0


def table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(widths[i]) for i, c in enumerate(row)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


class Sim:
    def __init__(self, endpoint: str, offset: int, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.fleet_sim", "--endpoint", endpoint,
             "--agents", str(count), "--offset", str(offset)], cwd=REPO, env=env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

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


def settle(client: ControlClient, quiet: float = 1.0) -> tuple[int, float]:
    """The heartbeat count once it stops moving, and when it last moved."""
    last, moved = heartbeats(client), time.monotonic()
    while time.monotonic() - moved < quiet:
        time.sleep(0.1)
        now = heartbeats(client)
        if now != last:
            last, moved = now, time.monotonic()
    return last, moved


def measure_run(client: ControlClient, sims: list[Sim], rate: float, seconds: float,
                ctl: psutil.Process) -> dict[str, float]:
    """Offer `rate` msg/s for `seconds`; the controller's rate is judged from the first message
    to the last one taken in, and per second of its own CPU time (what one core can take)."""
    before, _ = settle(client)
    cpu_before = sum(ctl.cpu_times()[:2])
    started = time.monotonic()
    for sim in sims:
        sim.run(rate / len(sims), seconds)
    results = [sim.read() for sim in sims]
    after, drained = settle(client)
    cpu = sum(ctl.cpu_times()[:2]) - cpu_before
    sent = sum(r["sent"] for r in results)
    received = after - before
    return {"sent": sent, "send_rate": sent / max(r["elapsed"] for r in results),
            "received": received, "lost": sent - received,
            "wall_rate": received / (drained - started), "cpu_rate": received / max(cpu, 1e-9),
            "cpu": cpu / (drained - started)}


def bench_ingest(base: Path) -> tuple[ControllerProc, list[Sim], dict[str, float]]:
    controller = ControllerProc(base).start()
    assert controller.proc is not None
    ctl = psutil.Process(controller.proc.pid)
    rss_empty = ctl.memory_info().rss
    client = ControlClient(controller.state_dir, timeout=60)
    per = AGENTS // SIMS
    sims = [Sim(controller.endpoint, i * per, per) for i in range(SIMS)]
    for sim in sims:
        sim.read()
    wait_for(lambda: client.call("stats")["agents"] >= AGENTS, 180, "10,000 agents to say hello")
    rss_known = ctl.memory_info().rss
    rows = [["max", measure_run(client, sims, 0, BLAST_SECONDS, ctl)]]
    for rate in PACED:
        rows.append([f"{rate:,}", measure_run(client, sims, rate, PACED_SECONDS, ctl)])
    table(f"Controller ingest, {AGENTS:,} simulated agents ({SIMS} simulator processes with "
          f"{per:,} DEALER connections each, plaintext), same 2-core machine",
          ["offered msg/s", "sent", "sent msg/s", "received", "lost", "taken in msg/s (wall)",
           "msg per controller CPU-s", "controller CPU"],
          [[label, r["sent"], f"{r['send_rate']:,.0f}", r["received"], r["lost"],
            f"{r['wall_rate']:,.0f}", f"{r['cpu_rate']:,.0f}", f"{100 * r['cpu']:.0f}%"]
           for label, r in rows])
    return controller, sims, {"rss_empty": rss_empty, "rss_known": rss_known,
                              "rss_full": ctl.memory_info().rss}


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
        assert result.returncode == 0
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
