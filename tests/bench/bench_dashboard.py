"""Dashboard benchmark, printed as tables (not collected by pytest): 10,000 simulated agents
(the controller benchmark's simulators, 5,000 DEALER connections per process, plaintext), the
controller pinned to one core with its HTTP server, and the same ingest runs twice, side by
side: with the dashboard closed, and with it open (live fleet pages streaming Server-Sent
Events and a browser-like client reloading the fleet page every second). The clients run in a
separate process on the simulators' CPUs, so the controller's core does only the controller's
work. Targets: fleet page served in <= 300 ms, >= 1 live update per second per open page, and
>= 50,000 heartbeats/s taken in on one core while the dashboard is open.

    .venv/bin/python tests/bench/bench_dashboard.py
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.bench_controller import (  # noqa: E402
    AGENTS,
    SIMS,
    TARGET,
    Sim,
    cpu_split,
    measure_run,
    table,
    verdict,
)
from tests.controller.fleet import env  # noqa: E402
from tests.dashboard.support import WebController  # noqa: E402
from tests.support.process import wait_for  # noqa: E402

from morag_fleet.controller.control import ControlClient  # noqa: E402
from morag_fleet.controller.web.app import WATCHED_S  # noqa: E402

RUN_SECONDS = 8.0
STREAMS = 2  # open fleet pages
PAGE_TARGET_S = 0.300
UPDATES_TARGET = 1.0  # per second per open page


# ---- the client process: open pages -----------------------------------------------------


def read_stream(port: int, path: str, stop: threading.Event, stamps: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200, response.status
    while not stop.is_set():
        line = response.fp.readline()
        if not line:
            break
        if line.startswith(b"event: update"):
            stamps.append(time.monotonic())
    conn.close()


def fetch(port: int, path: str) -> tuple[float, float, bytes]:
    """(seconds until the whole answer was read, seconds the controller says it took to build
    it (its Server-Timing header), the body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    assert response.status == 200, (path, response.status)
    timing = response.getheader("Server-Timing") or "app;dur=nan"
    return elapsed, float(timing.split("dur=")[1]) / 1000, body


def load_pages(port: int, path: str, stop: threading.Event, times: list[float],
               built: list[float]) -> None:
    while not stop.is_set():
        elapsed, build, body = fetch(port, path)
        assert b'data-agent="' in body
        times.append(elapsed)
        built.append(build)
        stop.wait(1.0)


def clients_main(port: int, seconds: float, streams: int) -> int:
    """Open `streams` live fleet pages and reload the fleet page every second for `seconds`;
    print one JSON line with the update rates and the page times."""
    stop = threading.Event()
    stamps: list[list[float]] = [[] for _ in range(streams)]
    times: list[float] = []
    built: list[float] = []
    threads = [threading.Thread(target=read_stream, args=(port, "/live/fleet", stop, s),
                                daemon=True) for s in stamps]
    threads.append(threading.Thread(target=load_pages, args=(port, "/", stop, times, built),
                                    daemon=True))
    for thread in threads:
        thread.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    time.sleep(seconds)
    stop.set()
    rates = []
    for s in stamps:
        inside = [t for t in s if t >= s[0] + 1.0] if s else []  # past the first second
        rates.append((len(inside) - 1) / (inside[-1] - inside[0]) if len(inside) > 1 else 0.0)
    print(json.dumps({"rates": rates, "pages": times, "built": built}), flush=True)
    return 0


class Clients:
    def __init__(self, port: int, seconds: float, cpus: set[int]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--clients", str(port), str(seconds), str(STREAMS)],
            cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True)
        os.sched_setaffinity(self.proc.pid, cpus)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def result(self) -> dict:
        assert self.proc.stdout is not None
        data = json.loads(self.proc.stdout.readline())
        self.proc.wait(30)
        return data


# ---- the benchmark ----------------------------------------------------------------------


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` onto `cpus` (threads the HTTP server makes later inherit it from
    its listening thread); a request thread that ended meanwhile is skipped."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def page_times(port: int, path: str, count: int) -> tuple[list[float], list[float]]:
    answers = [fetch(port, path) for _ in range(count)]
    return [a[0] for a in answers], [a[1] for a in answers]


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU-seconds of the controller: in all, on its main (ingest) thread, on ZeroMQ's threads;
    what is left is the HTTP server's threads (finished request threads included)."""
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    main = zmq_threads = 0.0
    for thread in proc.threads():
        cpu = thread.user_time + thread.system_time
        if thread.id == pid:
            main = cpu
        else:
            with contextlib.suppress(OSError):
                name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
                if name.startswith("ZMQbg"):
                    zmq_threads += cpu
    return {"total": total, "main": main, "web": total - main - zmq_threads}


def measured(controller: WebController, client: ControlClient, sims: list[Sim], rate: float,
             ctl: psutil.Process, ctl_cpus: set[int]) -> dict[str, float]:
    before, started = thread_cpu(ctl.pid), time.monotonic()
    result = measure_run(client, sims, rate, RUN_SECONDS, ctl, ctl_cpus)
    after, wall = thread_cpu(ctl.pid), time.monotonic() - started
    result["web_cpu"] = (after["web"] - before["web"]) / wall
    return result


def run_row(label: str, dashboard: str, r: dict[str, float], seen: dict | None) -> list[object]:
    live = [f"{min(seen['rates']):.2f}/s", ms(statistics.median(seen["built"])),
            ms(max(seen["built"])), ms(statistics.median(seen["pages"])),
            ms(max(seen["pages"]))] if seen else ["-"] * 5
    return [label, dashboard, f"{r['wall_rate']:,.0f}", f"{r['cpu_rate']:,.0f}",
            f"{100 * r['cpu']:.0f}%", f"{100 * r['web_cpu']:.1f}%", f"{100 * r['others']:.0f}%",
            r["lost"], *live]


def run_pair(controller: WebController, client: ControlClient, sims: list[Sim], rate: float,
             ctl: psutil.Process, ctl_cpus: set[int], sim_cpus: set[int]) -> tuple[
                 list[list[object]], tuple[dict, dict, dict]]:
    time.sleep(WATCHED_S + 1)  # closed: no page has asked for anything for a while
    closed = measured(controller, client, sims, rate, ctl, ctl_cpus)
    clients = Clients(controller.http_port, RUN_SECONDS + 4, sim_cpus)
    time.sleep(1.0)  # the streams are open and have sent their first update
    opened = measured(controller, client, sims, rate, ctl, ctl_cpus)
    seen = clients.result()
    label = "max" if rate == 0 else f"{rate:,.0f}"
    return [run_row(label, "closed", closed, None),
            run_row(label, f"open ({STREAMS} live pages + reloads)", opened, seen)], \
        (closed, opened, seen)


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="mfw-"))
    controller = WebController(base).start()
    assert controller.proc is not None
    ctl_cpus, sim_cpus = cpu_split()
    pin_process(controller.proc.pid, ctl_cpus)
    ctl = psutil.Process(controller.proc.pid)
    client = ControlClient(controller.state_dir, timeout=60)
    per = AGENTS // SIMS
    sims = [Sim(controller.endpoint, i * per, per, sim_cpus) for i in range(SIMS)]
    try:
        for sim in sims:
            sim.read()
        wait_for(lambda: client.call("stats")["agents"] >= AGENTS, 180, "10,000 agents")
        port = controller.http_port
        quiet = {path: page_times(port, path, 10) for path in
                 ("/", "/?state=idle&page=50", "/agent/sim-00042", "/live/fleet?poll=1",
                  "/metrics")}
        table(f"Pages with {AGENTS:,} agents known, no ingest load (10 requests each; built: "
              "the controller's own time (Server-Timing), received: as the client saw it)",
              ["page", "built median", "built max", "received median", "received max"],
              [[path, ms(statistics.median(b)), ms(max(b)), ms(statistics.median(t)),
                ms(max(t))] for path, (t, b) in quiet.items()])
        rows, results = [], []
        for rate in (TARGET, 0):
            pair, result = run_pair(controller, client, sims, rate, ctl, ctl_cpus, sim_cpus)
            rows += pair
            results.append(result)
        where = (f"controller pinned to CPU {min(ctl_cpus)}, simulators and page clients on "
                 f"CPU {','.join(map(str, sorted(sim_cpus)))}" if ctl_cpus != sim_cpus
                 else "everything on one CPU")
        table(f"Ingest with the dashboard closed and open, side by side ({where}; "
              f"{RUN_SECONDS:g} s runs)",
              ["offered msg/s", "dashboard", "taken in msg/s (wall)", "msg per controller CPU-s",
               "controller CPU", "of it HTTP threads", "other processes on its CPU", "lost",
               "live updates (slowest page)", "page built median", "page built max",
               "page received median", "page received max"], rows)
        (_closed, paced_open, paced_seen), (_c, blast_open, blast_seen) = results
        worst_built = max(quiet["/"][1] + paced_seen["built"] + blast_seen["built"])
        worst_page = max(quiet["/"][0] + paced_seen["pages"] + blast_seen["pages"])
        table("Targets", ["check", "measured", "verdict"], [
            ["fleet page built by the controller (worst of all runs)", ms(worst_built),
             verdict(worst_built <= PAGE_TARGET_S)],
            ["fleet page received by the client (worst of all runs)", ms(worst_page),
             verdict(worst_page <= PAGE_TARGET_S)],
            [f"live updates per open page at {TARGET:,} msg/s",
             f"{min(paced_seen['rates']):.2f}/s",
             verdict(min(paced_seen["rates"]) >= UPDATES_TARGET)],
            [f"offered {TARGET:,} msg/s, dashboard open: taken in (>= 98% of offered)",
             f"{paced_open['wall_rate']:,.0f} msg/s",
             verdict(paced_open["wall_rate"] >= 0.98 * paced_open["send_rate"])],
            [f"offered {TARGET:,} msg/s, dashboard open: msg per controller CPU-s",
             f"{paced_open['cpu_rate']:,.0f}", verdict(paced_open["cpu_rate"] >= TARGET)],
            ["full blast, dashboard open: taken in (wall clock)",
             f"{blast_open['wall_rate']:,.0f} msg/s",
             verdict(blast_open["wall_rate"] >= TARGET)],
            ["live updates per open page at full blast", f"{min(blast_seen['rates']):.2f}/s",
             verdict(min(blast_seen["rates"]) >= UPDATES_TARGET)]])
    finally:
        for sim in sims:
            sim.close()
        controller.stop(60)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", nargs=3, metavar=("PORT", "SECONDS", "STREAMS"))
    args = parser.parse_args()
    if args.clients:
        sys.exit(clients_main(int(args.clients[0]), float(args.clients[1]),
                              int(args.clients[2])))
    sys.exit(main())
