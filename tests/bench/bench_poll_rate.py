"""No poll-rate cap, against the MoRAG double (no long poll, `wait` ignored):

1. a queue of 100 trivial jobs, `poll_interval` 10, one agent with one slot: time to empty it;
2. MoRAG's remote converter's fixed-sleep loop on the same server, run for 4 jobs of another
   content type; its measured claim-to-claim cycle is extrapolated to 100 jobs (not run: that
   would take ~1,000 s);
3. an idle agent with `poll_interval` 3 behind a recording proxy for 40 s: the gaps between
   the polls the server receives, against `poll_interval`.

Parts 2 and 3 run at the same time (both mostly wait).

    .venv/bin/python tests/bench/bench_poll_rate.py
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

from _common import (
    FixedSleepWorker,
    PollRecorder,
    create_job,
    epoch,
    note,
    table,
    text_sources,
    verdict,
    wait_final,
    wait_until,
    workspace,
)
from tests.support.agent_proc import AgentProcess
from tests.support.morag_double import MoragDouble, running_morag_double

QUEUE = 100
INTERVAL = 10.0
BASELINE_JOBS = 4
IDLE_INTERVAL = 3.0
IDLE_SECONDS = 40.0
GAP_ALLOWANCE = 0.5  # the poll request itself and thread wake-up, on top of the interval


def drain_queue(tmp: Path, double: MoragDouble) -> dict[str, float]:
    ids = [create_job(double.url, path) for path in text_sources(tmp / "queue", QUEUE)]
    agent = AgentProcess(tmp / "agents", double.url, worker_id="one-slot", slots=1,
                         poll_interval=INTERVAL, long_poll_wait=30, log_level="INFO")
    started = time.monotonic()
    agent.start()
    ready = time.monotonic()
    try:
        statuses = wait_final(double.url, ids, 120)
        done = time.monotonic()
    finally:
        agent.stop()
    window = (max(epoch(s["completed_at"]) for s in statuses)
              - min(epoch(s["started_at"]) for s in statuses))
    failed = sum(s["status"] != "completed" for s in statuses)
    return {"wall": done - ready, "startup": ready - started, "window": window, "failed": failed}


def idle_gaps_and_baseline(tmp: Path, double: MoragDouble) -> tuple[list[float], float]:
    for path in text_sources(tmp / "audio", BASELINE_JOBS, "audio"):
        create_job(double.url, path, "audio")
    baseline = FixedSleepWorker(double.url, "fixed-sleep", "audio", INTERVAL,
                                tmp / "baseline").start()
    with PollRecorder(double.url) as proxy:
        agent = AgentProcess(tmp / "agents", proxy.url, worker_id="idle", slots=2,
                             poll_interval=IDLE_INTERVAL, long_poll_wait=30,
                             log_level="INFO").start()
        try:
            since = time.monotonic()
            time.sleep(IDLE_SECONDS)
            wait_until(lambda: len(baseline.done) >= BASELINE_JOBS, 3 * INTERVAL,
                       "the fixed-sleep worker's jobs")
        finally:
            agent.stop()
            baseline.stop()
        gaps = proxy.gaps(since)
    claims = [t for t, _ in baseline.done]
    cycle = statistics.mean(b - a for a, b in itertools.pairwise(claims))
    return gaps, cycle


def main() -> int:
    with workspace("pollrate") as tmp, running_morag_double(tmp / "double") as double:
        note(f"queue of {QUEUE} jobs, one agent with one slot, poll_interval {INTERVAL:g} ...")
        agent = drain_queue(tmp, double)
        note(f"fixed-sleep loop for {BASELINE_JOBS} jobs, and an idle agent for "
             f"{IDLE_SECONDS:g} s ...")
        gaps, cycle = idle_gaps_and_baseline(tmp, double)

    projected = QUEUE * cycle
    table(f"{QUEUE} trivial jobs, poll_interval {INTERVAL:g} s, MoRAG double (no long poll)", [
        "consumer", "how", "seconds", "jobs/s"], [
        ["agent, 1 slot", "run", f"{agent['wall']:.1f}", f"{QUEUE / agent['wall']:.1f}"],
        ["agent, 1 slot (server: 1st claim -> last result)", "run", f"{agent['window']:.1f}",
         f"{QUEUE / agent['window']:.1f}"],
        ["fixed sleep", f"{BASELINE_JOBS} jobs run, x{QUEUE // BASELINE_JOBS} extrapolated",
         f"{projected:.0f}", f"{1 / cycle:.2f}"],
    ])
    note(f"(agent start-up before its first poll, not counted: {agent['startup']:.1f} s; "
         f"failed jobs: {agent['failed']:.0f}; fixed-sleep cycle measured: {cycle:.2f} s/job)")
    biggest = max(gaps)
    table(f"Idle agent, poll_interval {IDLE_INTERVAL:g} s, {IDLE_SECONDS:g} s, gaps between "
          "polls seen by the server", ["polls", "min gap", "mean gap", "max gap", "interval"],
          [[len(gaps) + 1, f"{min(gaps):.2f} s", f"{statistics.mean(gaps):.2f} s",
            f"{biggest:.2f} s", f"{IDLE_INTERVAL:g} s"]])
    table("Targets", ["check", "measured", "target", "result"], [
        ["agent drains 100 jobs", f"{agent['wall']:.1f} s", "a few seconds (<= 10 s)",
         verdict(agent["wall"] <= 10 and agent["failed"] == 0)],
        ["vs fixed-sleep loop", f"{projected / agent['wall']:.0f}x faster",
         f"loop ~{QUEUE * INTERVAL:.0f} s", verdict(projected > 10 * agent["wall"])],
        ["idle max gap", f"{biggest:.2f} s",
         f"<= {IDLE_INTERVAL:g} s + {GAP_ALLOWANCE:g} s request",
         verdict(biggest <= IDLE_INTERVAL + GAP_ALLOWANCE)],
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
