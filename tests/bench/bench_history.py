"""The controller's job history: what keeping a row per job costs when committing job events, and
how long the history's questions take on a full history (the retention cap of events).

Printed as tables, side by side in one run (not collected by pytest):

1. job events committed per second: events only, a row update for every event, and row updates
   with progress in steps (what the controller does); the mix is a job's five phase events plus
   twenty progress updates, as a conversion of a few minutes sends them;
2. the history queries the pages and `morag-fleet history|job|failures` run, on a history of
   200,000 events from 100 agents.

    .venv/bin/python tests/bench/bench_history.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import table

from morag_fleet.controller import store as store_module
from morag_fleet.controller.history import History
from morag_fleet.controller.jobrows import ProgressSteps
from morag_fleet.controller.store import PendingEvent, Store

EVENTS = 200_000
BATCH = 2000  # the controller's ingest batch
PROGRESS_UPDATES = 20
TYPES = ("audio", "video", "document", "image", "web")


def one_job(job: int, start: float) -> list[PendingEvent]:
    """One job's events as an agent reports them; every tenth job fails."""
    agent, job_id, t = f"agent-{job % 100}", f"job-{job}", start + job * 3
    kind = TYPES[job % len(TYPES)]
    events: list[PendingEvent] = []

    def add(offset: float, name: str, **fields: Any) -> None:
        events.append(PendingEvent(agent, t + offset, {"scope": "job", "name": name,
                                                       "job_id": job_id, **fields}))

    add(0, "claimed", content_type=kind)
    add(1, "downloading")
    add(2, "converting", progress=0.0)
    for step in range(1, PROGRESS_UPDATES + 1):
        add(2 + step, "converting", progress=step / (PROGRESS_UPDATES + 1))
    failed = job % 10 == 0
    error = "conversion timed out after 600 s" if failed else None
    add(25, "spooled", content_type=kind, download_s=1.0, convert_s=23.0, success=not failed,
        error=error)
    add(26, "failed" if failed else "completed", content_type=kind, deliver_s=1.0, error=error)
    return events


def job_events(count: int, start: float) -> list[PendingEvent]:
    events: list[PendingEvent] = []
    job = 0
    while len(events) < count:
        events.extend(one_job(job, start))
        job += 1
    return events[:count]


class EveryEvent(ProgressSteps):
    def wanted(self, body: dict[str, Any]) -> bool:
        return True


def commit_rate(events: list[PendingEvent], how: str) -> float:
    store = Store(Path(tempfile.mkdtemp(prefix="mfh-")) / "c.sqlite")
    original = store_module.job_row
    if how == "events only":
        store_module.job_row = lambda *args: None  # type: ignore[assignment]
    elif how == "row per event":
        store._progress = EveryEvent()
    try:
        started = time.perf_counter()
        for i in range(0, len(events), BATCH):
            store.record_events(events[i:i + BATCH], {})
        return len(events) / (time.perf_counter() - started)
    finally:
        store_module.job_row = original
        store.close()


def timed(call: Callable[[], Any], runs: int = 20) -> str:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return f"{statistics.median(times) * 1000:.1f} ms"


def main() -> int:
    now = time.time()
    sample = job_events(50_000, now - 3600)
    rates = {how: commit_rate(sample, how)
             for how in ("events only", "row per event", "rows, progress in steps")}
    base = rates["events only"]
    table("Committing job events (5 phase events + 20 progress updates per job)",
          ["how", "events/s", "vs events only"],
          [[how, f"{rate:,.0f}", f"{rate / base:.2f}x"] for how, rate in rates.items()])

    store = Store(Path(tempfile.mkdtemp(prefix="mfh-")) / "c.sqlite")
    events = job_events(EVENTS, now - EVENTS * 3 / 25)
    for i in range(0, len(events), BATCH):
        store.record_events(events[i:i + BATCH], {})
    history = History(store.path)
    recent = history.jobs(limit=1)[0]["job_id"]
    jobs = store.db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    table(f"History queries on {EVENTS:,} events ({jobs:,} jobs)",
          ["query", "median"], [
              ["jobs, newest 200", timed(lambda: history.jobs())],
              ["jobs, failed, one type, last hour",
               timed(lambda: history.jobs("failed", "audio", max_age_s=3600))],
              ["jobs, one agent", timed(lambda: history.jobs(agent="agent-7"))],
              ["a job's timeline", timed(lambda: history.job_timeline(recent))],
              ["failures by reason, last day", timed(lambda: history.failures())],
              ["finished counts by type, last hour", timed(lambda: history.finished_counts())],
              ["an agent's state changes", timed(lambda: history.agent_history("agent-7"))],
          ])
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
