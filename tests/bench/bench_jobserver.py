"""Reference job server vs the MoRAG double, side by side in one run (not a pytest test):

1. claim+result throughput: 300 jobs drained by 1 and by 8 concurrent workers (poll, PUT result);
2. pickup latency: how long after a job is created an idle worker holds it, with a long poll on
   the reference server vs MoRAG-style polling every second on the double.

Run: `python tests/bench/bench_jobserver.py` (about a minute). Prints a table.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.jobserver import JOBS, running_jobserver
from tests.support.morag_double import running_morag_double

JOB_COUNT = 300
PICKUPS = 10
POLL_INTERVAL = 1.0


def create_jobs(server, source: Path, count: int) -> None:
    body = {"source_file_path": str(source), "content_type": "document",
            "ingestion_task_id": "bench", "task_options": {}}
    with requests.Session() as session:
        for _ in range(count):
            session.post(server.url + f"{JOBS}/", json=body, timeout=30).raise_for_status()


def drain(server, workers: int) -> float:
    """Jobs per second until the queue is empty, each job polled and given a result."""

    def worker(name: str) -> None:
        with requests.Session() as session:
            while True:
                job = session.get(server.url + f"{JOBS}/poll", timeout=30, params={
                    "worker_id": name, "content_types": "document", "max_jobs": 1}).json()
                if job["job_id"] is None:
                    return
                session.put(server.url + f"{JOBS}/{job['job_id']}/result", timeout=30,
                            params={"worker_id": name},
                            json={"success": True, "content": "# x"}).raise_for_status()

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return JOB_COUNT / (time.perf_counter() - start)


def pickup_latency(server, source: Path, long_poll: bool) -> float:
    """Median seconds from creating a job to an idle worker holding it."""
    latencies = []
    for _ in range(PICKUPS):
        got = threading.Event()

        def idle_worker(got: threading.Event) -> None:
            params = {"worker_id": "idle", "content_types": "document", "max_jobs": 1}
            if long_poll:
                params["wait"] = 30
            while not got.is_set():
                job = requests.get(server.url + f"{JOBS}/poll", params=params, timeout=60).json()
                if job["job_id"] is not None:
                    got.set()
                elif not long_poll:
                    time.sleep(POLL_INTERVAL)

        thread = threading.Thread(target=idle_worker, args=(got,))
        thread.start()
        time.sleep(0.3 + 0.7 * (len(latencies) / PICKUPS))  # spread creation over the interval
        created = time.perf_counter()
        create_jobs(server, source, 1)
        got.wait(60)
        latencies.append(time.perf_counter() - created)
        thread.join()
    return statistics.median(latencies)


def measure(name: str, server, source: Path, long_poll: bool) -> list[str]:
    row = [name]
    for workers in (1, 8):
        create_jobs(server, source, JOB_COUNT)
        row.append(f"{drain(server, workers):.0f}")
    row.append(f"{pickup_latency(server, source, long_poll) * 1000:.0f}")
    return row


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = base / "doc.txt"
        source.write_text("benchmark source\n")
        rows = []
        with running_jobserver(base / "ref", lease_seconds=120) as server:
            rows.append(measure("reference server (long poll)", server, source, True))
        with running_morag_double(base / "double") as double:
            rows.append(measure(f"MoRAG double (poll every {POLL_INTERVAL:.0f} s)", double,
                                source, False))
    header = ["server", "jobs/s 1 worker", "jobs/s 8 workers", "pickup median ms"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
