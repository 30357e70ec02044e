"""Pickup latency (job created -> claimed) of an idle agent that long-polls the reference job
server, side by side with MoRAG's remote converter's fixed-sleep loop on the same server, in the
same run.

Both consumers run at once: the agent takes `document` jobs, the fixed-sleep worker (poll, then
`time.sleep(2)`) takes `image` jobs. At each of 30 random instants one job of each kind is
created; the gaps (2.2-4 s, seeded) are longer than the baseline's cycle, so its jobs never
queue and its latency is the pure cost of the sleep. Latency is `started_at - created_at` from
the server's status, so both are timed on the server's clock.

    .venv/bin/python tests/bench/bench_pickup.py
"""

from __future__ import annotations

import random
import statistics
import time

from _common import (
    FixedSleepWorker,
    create_job,
    ms,
    note,
    percentile,
    pickup_seconds,
    table,
    text_sources,
    verdict,
    wait_final,
    workspace,
)
from tests.support.agent_proc import AgentProcess
from tests.support.jobserver import running_jobserver

EVENTS = 30
BASELINE_INTERVAL = 2.0
TARGET_P50 = 0.050
SEED = 20240601


def main() -> int:
    with workspace("pickup") as tmp, running_jobserver(tmp / "server") as server:
        docs = text_sources(tmp / "src", EVENTS, "doc")
        images = text_sources(tmp / "src", EVENTS, "img")
        agent = AgentProcess(tmp / "agents", server.url, worker_id="agent", slots=2,
                             poll_interval=10, long_poll_wait=30, log_level="INFO").start()
        baseline = FixedSleepWorker(server.url, "fixed-sleep", "image", BASELINE_INTERVAL,
                                    tmp / "baseline").start()
        try:
            time.sleep(1.0)  # both idle: the agent's long poll is held, the baseline sleeps
            rng = random.Random(SEED)
            agent_ids, baseline_ids = [], []
            note(f"creating {EVENTS} document + {EVENTS} image jobs at random instants ...")
            for i in range(EVENTS):
                time.sleep(rng.uniform(2.2, 4.0))
                pair = [("agent", docs[i], "document"), ("baseline", images[i], "image")]
                rng.shuffle(pair)  # neither side is always created first
                for who, path, kind in pair:
                    (agent_ids if who == "agent" else baseline_ids).append(
                        create_job(server.url, path, kind))
            agent_lat = pickup_seconds(wait_final(server.url, agent_ids, 60))
            base_lat = pickup_seconds(wait_final(server.url, baseline_ids, 60))
        finally:
            baseline.stop()
            agent.stop()

    rows = []
    for label, values in (("agent, long poll", agent_lat),
                          (f"fixed sleep {BASELINE_INTERVAL:g} s", base_lat)):
        rows.append([label, len(values), ms(percentile(values, 0.5)),
                     ms(statistics.mean(values)), ms(percentile(values, 0.9)), ms(max(values))])
    table("Pickup latency, job created -> claimed (reference server, server clock)",
          ["consumer", "jobs", "p50", "mean", "p90", "max"], rows)
    p50 = percentile(agent_lat, 0.5)
    base_mean = statistics.mean(base_lat)
    expected = BASELINE_INTERVAL / 2
    table("Targets", ["check", "measured", "target", "result"], [
        ["agent p50", ms(p50), f"<= {ms(TARGET_P50)}", verdict(p50 <= TARGET_P50)],
        ["baseline mean (reference)", ms(base_mean), f"~ {ms(expected)} (interval/2)",
         "as expected" if 0.5 * expected <= base_mean <= 1.5 * expected else "unexpected"],
        ["speed-up of p50", f"{percentile(base_lat, 0.5) / max(p50, 1e-6):.0f}x", "-", "-"],
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
