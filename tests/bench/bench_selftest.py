"""What the self-test costs an agent's start: real `morag-agent run` processes serving all six
content types, started with `selftest: true` and with `selftest: false`, each against the real
reference job server.

Printed per mode: seconds from the process start to `agent_started` (the self-test runs before
it, and before READY=1), the self-test's own seconds per type (from its `selftest_done` log line;
types run in parallel, one per slot at a time, so the total is less than their sum), and the
processing time of the first audio job after the start, which the self-test shortens because the
slot has already loaded the whisper model.

    .venv/bin/python tests/bench/bench_selftest.py [--runs 2] [--slots 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from _common import note, table, wait_final, workspace
from tests.support.agent_proc import AgentProcess
from tests.support.jobserver import JobServer, running_jobserver

from morag_fleet.agent.selftest import SAMPLES_DIR

TYPES = ("audio", "video", "document", "image", "web", "youtube")


def one_start(base: Path, server: JobServer, selftest: bool, slots: int, run: int
              ) -> dict[str, Any]:
    """Start, time it, convert one audio job, stop."""
    agent = AgentProcess(base, server.url, f"bench-{'on' if selftest else 'off'}-{run}",
                         slots=slots, content_types=TYPES, selftest=selftest,
                         log_level="INFO")
    started = time.monotonic()
    agent.start()
    startup = time.monotonic() - started
    done = agent.find("selftest_done")
    job = server.upload(SAMPLES_DIR / "speech.ogg", "audio")
    wait_final(server.url, [job], 120)
    first_audio = float(server.result(job).get("processing_time") or 0.0)
    agent.stop()
    return {"startup": startup, "first_audio": first_audio,
            "selftest": done[0] if done else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    with workspace("selftest") as base, running_jobserver(base / "server") as server:
        for run in range(args.runs):
            for selftest in (True, False):
                note(f"run {run + 1}/{args.runs}, selftest {'on' if selftest else 'off'} ...")
                results[selftest].append(one_start(base, server, selftest, args.slots, run))
    report(results, args.slots)


def report(results: dict[bool, list[dict[str, Any]]], slots: int) -> None:
    on = [r["selftest"] for r in results[True] if r["selftest"]]
    rows = [(name, *(f"{r['seconds_by_type'][name]:.2f}" for r in on),
             f"{statistics.median(r['seconds_by_type'][name] for r in on):.2f}")
            for name in TYPES]
    rows.append(("self-test total (wall)", *(f"{r['seconds']:.2f}" for r in on),
                 f"{statistics.median(r['seconds'] for r in on):.2f}"))
    runs = [f"run {i + 1}" for i in range(len(on))]
    table(f"Self-test seconds per type ({slots} slot(s), all six types)",
          ["type", *runs, "median"], rows)
    start_rows = []
    for selftest in (True, False):
        starts = [r["startup"] for r in results[selftest]]
        firsts = [r["first_audio"] for r in results[selftest]]
        start_rows.append((f"selftest {'on' if selftest else 'off'}",
                           f"{statistics.median(starts):.2f}",
                           f"{statistics.median(firsts):.2f}"))
    table("Agent start (process start -> agent_started) and first audio job, median seconds",
          ["mode", "start-up s", "first audio job s"], start_rows)


if __name__ == "__main__":
    main()
