"""What the agent benchmarks share: tables, the remote converter's fixed-sleep worker (the
baseline every number is compared with), a poll-recording proxy, process sampling, and helpers
to queue small text jobs and read server timestamps.

Not a test module: the bench scripts import it as `_common` (their own directory is first on
sys.path); importing it also puts the repository root on sys.path for `tests.support`.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import itertools
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

JOBS = "/api/v1/remote-jobs"


# ----- output -----------------------------------------------------------------------------------

def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Plain aligned columns: the first left-aligned (a label), the rest right-aligned."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(row))

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile; enough for the 30-odd samples a bench takes."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def note(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def workspace(name: str) -> Iterator[Path]:
    """A scratch directory removed afterwards, whatever happens (a 1 GiB source lives here)."""
    with tempfile.TemporaryDirectory(prefix=f"morag-bench-{name}-") as tmp:
        yield Path(tmp)


# ----- jobs and timestamps ----------------------------------------------------------------------

def epoch(iso: str) -> float:
    """The servers write naive UTC ISO strings (MoRAG's format)."""
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def text_sources(directory: Path, count: int, prefix: str = "note") -> list[Path]:
    """Small distinct .txt files, the trivial job of the throughput benchmarks."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"{prefix}-{i}.txt"
        path.write_text(f"Paragraph {i} of the benchmark.\n\nA second paragraph, {i}.\n")
        paths.append(path)
    return paths


def create_job(api_url: str, source: Path, content_type: str = "document") -> str:
    """MoRAG's own way of creating a job (the server reads the file in place)."""
    body = {"source_file_path": str(source.resolve()), "content_type": content_type,
            "ingestion_task_id": "bench", "task_options": {}}
    answer = requests.post(f"{api_url}{JOBS}/", json=body, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["job_id"])


def job_status(api_url: str, job_id: str) -> dict[str, Any]:
    answer = requests.get(f"{api_url}{JOBS}/{job_id}/status", timeout=30)
    answer.raise_for_status()
    return answer.json()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_final(api_url: str, job_ids: Sequence[str], timeout: float) -> list[dict[str, Any]]:
    """Every job's status once all are completed or failed (a bounded wait). Asks about one
    job at a time, in queue order, so that waiting adds almost no load to the server that is
    being measured (both servers hand out the oldest job first)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    for job_id in job_ids:
        while True:
            status = job_status(api_url, job_id)
            if status["status"] in ("completed", "failed"):
                found.append(status)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(job_ids) - len(found)} of {len(job_ids)} jobs not "
                                   f"final after {timeout:.0f} s")
            time.sleep(0.1)
    return found


def pickup_seconds(statuses: Sequence[dict[str, Any]]) -> list[float]:
    """created -> claimed, on the server's own clock."""
    return [epoch(s["started_at"]) - epoch(s["created_at"]) for s in statuses]


# ----- the remote converter's fixed-sleep worker -------------------------------------------------

class FixedSleepWorker:
    """The loop of MoRAG's own remote converter, as written there:
    poll once, process the job if there is one, then `time.sleep(poll_interval)` whatever
    happened. At most one job per poll interval; a new job waits half an interval on average.

    Processing is the same trivial work for every benchmark: download the source, read it, PUT
    a markdown result. Runs in a thread until `stop()` (it notices within one poll interval).
    """

    def __init__(self, api_url: str, worker_id: str, content_types: str, poll_interval: float,
                 work_dir: Path) -> None:
        self.api_url = api_url
        self.worker_id = worker_id
        self.content_types = content_types
        self.poll_interval = poll_interval
        self.work_dir = work_dir
        self.done: list[tuple[float, str]] = []  # (time.time() at claim, job id)
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=worker_id, daemon=True)

    def start(self) -> FixedSleepWorker:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=self.poll_interval + 30)

    def _loop(self) -> None:
        while self._running:
            try:
                answer = requests.get(
                    f"{self.api_url}{JOBS}/poll", timeout=30,
                    params={"worker_id": self.worker_id, "content_types": self.content_types,
                            "max_jobs": 1})
                job = answer.json() if answer.status_code == 200 else {}
                if job.get("job_id"):
                    self.done.append((time.time(), job["job_id"]))
                    self._process(job)
            except requests.RequestException as exc:
                print(f"baseline worker: {exc}", file=sys.stderr)
            time.sleep(self.poll_interval)

    def _process(self, job: dict[str, Any]) -> None:
        path = self.work_dir / f"{job['job_id']}.src"
        with requests.get(self.api_url + job["source_file_url"], stream=True, timeout=60) as r:
            r.raise_for_status()
            with path.open("wb") as out:
                for chunk in r.iter_content(1 << 20):
                    out.write(chunk)
        text = path.read_text(errors="replace")
        path.unlink()
        # the reference server hears a result only from the job's holder
        requests.put(f"{self.api_url}{JOBS}/{job['job_id']}/result", timeout=60,
                     params={"worker_id": self.worker_id},
                     json={"success": True, "content": f"# Document\n\n{text}"}).raise_for_status()


# ----- a proxy that records when polls arrive ---------------------------------------------------

class PollRecorder:
    """A loopback HTTP proxy in front of a server that notes the arrival time of every poll, so
    the gaps an idle agent leaves between polls can be measured from outside the agent."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.polls: list[float] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                if self.path.startswith(f"{JOBS}/poll"):
                    recorder.polls.append(time.monotonic())
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "keep-alive")}
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                finally:
                    conn.close()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PollRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def gaps(self, since: float = 0.0) -> list[float]:
        times = [t for t in self.polls if t >= since]
        return [b - a for a, b in itertools.pairwise(times)]


# ----- processes ---------------------------------------------------------------------------------

def tree(pid: int) -> list[psutil.Process]:
    """The process and its children (an agent's slot processes), those still alive."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def vm_hwm_bytes(pid: int) -> int:
    """The kernel's own peak-RSS record for a process (catches peaks between samples)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples one process's RSS (and its children's, separately) in a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.main: list[int] = []
        self.children: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            procs = tree(self.pid)
            if procs:
                with contextlib.suppress(psutil.Error):
                    self.main.append(procs[0].memory_info().rss)
                kids = 0
                for child in procs[1:]:
                    with contextlib.suppress(psutil.Error):
                        kids += child.memory_info().rss
                self.children.append(kids)
            self._stop.wait(self.every)


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
