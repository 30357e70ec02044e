"""What an idle agent costs: RSS and CPU over 60 s, for three agents side by side in one run,
each with the default `poll_interval` 10 and `long_poll_wait` 30 and 2 slots:

- fresh, on the reference server (held long polls);
- fresh, on the MoRAG double (no long poll: it backs off to one poll per 5-10 s);
- on the reference server after converting two small jobs.
The slot processes of all three start with the start-up self-test and stay, keeping the
converters it loaded.

Each talks through a recording proxy that counts its polls. CPU is user+system time of the
agent's process tree over the window, as a share of one core.

    .venv/bin/python tests/bench/bench_idle.py
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    PollRecorder,
    cpu_seconds,
    create_job,
    mib,
    note,
    table,
    text_sources,
    tree,
    wait_final,
    workspace,
)
from tests.support.agent_proc import AgentProcess
from tests.support.jobserver import running_jobserver
from tests.support.morag_double import running_morag_double

WINDOW = 60.0
SAMPLE_EVERY = 0.5


@dataclass
class Watched:
    label: str
    agent: AgentProcess
    proxy: PollRecorder
    main_rss: list[int] = field(default_factory=list)
    child_rss: list[int] = field(default_factory=list)
    children: int = 0
    threads: int = 0
    cpu: float = 0.0
    polls: int = 0
    stop_seconds: float = 0.0

    @property
    def pid(self) -> int:
        assert self.agent.proc is not None
        return self.agent.proc.pid

    def sample(self) -> None:
        procs = tree(self.pid)
        if not procs:
            return
        self.main_rss.append(procs[0].memory_info().rss)
        self.child_rss.append(sum(p.memory_info().rss for p in procs[1:]))
        self.children = len(procs) - 1
        self.threads = procs[0].num_threads()


def start(tmp: Path, label: str, name: str, proxy: PollRecorder) -> Watched:
    agent = AgentProcess(tmp / "agents", proxy.url, worker_id=name, slots=2, poll_interval=10,
                         long_poll_wait=30, log_level="INFO").start()
    return Watched(label, agent, proxy)


def watch(agents: list[Watched]) -> None:
    time.sleep(3.0)  # past start-up
    cpu0 = [cpu_seconds(tree(w.pid)) for w in agents]
    polls0 = [len(w.proxy.polls) for w in agents]
    end = time.monotonic() + WINDOW
    while time.monotonic() < end:
        for w in agents:
            w.sample()
        time.sleep(SAMPLE_EVERY)
    for w, before, polled in zip(agents, cpu0, polls0, strict=True):
        w.cpu = cpu_seconds(tree(w.pid)) - before
        w.polls = len(w.proxy.polls) - polled


def stop_all(agents: list[Watched]) -> None:
    """SIGTERM to all at once; each one's time to exit (an idle agent first lets its held
    long poll come back, so that a job the server hands out meanwhile is not lost)."""

    def stop(w: Watched) -> None:
        began = time.monotonic()
        w.agent.stop()
        w.stop_seconds = time.monotonic() - began

    threads = [threading.Thread(target=stop, args=(w,)) for w in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> int:
    with (workspace("idle") as tmp, running_jobserver(tmp / "server") as server,
          running_morag_double(tmp / "double") as double,
          PollRecorder(server.url) as p1, PollRecorder(double.url) as p2,
          PollRecorder(server.url) as p3):
        # the used agent first and alone, so that it is the one that converts the two jobs
        used = start(tmp, "after 2 jobs, reference server", "used-ref", p3)
        agents = [used]
        try:
            ids = [create_job(server.url, path) for path in text_sources(tmp / "src", 2)]
            wait_final(server.url, ids, 60)
            agents.insert(0, start(tmp, "fresh, reference server", "fresh-ref", p1))
            agents.insert(1, start(tmp, "fresh, MoRAG double", "fresh-double", p2))
            note(f"watching three idle agents for {WINDOW:g} s ...")
            watch(agents)
        finally:
            stop_all(agents)
    _report(agents)
    return 0


def _report(agents: list[Watched]) -> None:
    rows = []
    for w in agents:
        rows.append([w.label, mib(statistics.median(w.main_rss)), mib(max(w.main_rss)),
                     w.threads, w.children, mib(max(w.child_rss)),
                     f"{w.cpu:.2f} s", f"{w.cpu / WINDOW * 100:.2f} %", w.polls,
                     f"{w.stop_seconds:.1f} s"])
    table(f"Idle agents over {WINDOW:g} s (2 slots, poll_interval 10, long_poll_wait 30)",
          ["agent", "main RSS median", "main RSS peak", "threads", "children",
           "children RSS", "CPU", "CPU share of a core", "polls", "SIGTERM->exit"], rows)
    note("(children: the slot processes plus multiprocessing's resource tracker; slots start "
         "with the start-up self-test)")


if __name__ == "__main__":
    raise SystemExit(main())
