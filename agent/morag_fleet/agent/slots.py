"""Slot processes: each slot converts in its own long-lived child process.

Why a process per slot: conversions are CPU-bound and use native libraries that can crash, hang or
leak; a child keeps loaded models between jobs, and when it misbehaves the parent kills its whole
process group (ffmpeg and other tools included) and starts a fresh one. The parent never blocks
on a conversion: it waits on a pipe with a deadline and watches the child's memory.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from morag_fleet.log import get_logger

log = get_logger(__name__)
_spawn = mp.get_context("spawn")
WATCH_INTERVAL = 0.25
TREE_SCAN_INTERVAL = 1.0  # how often the slot's child tools are looked up (a /proc scan)


@dataclass(frozen=True)
class ConvertRequest:
    job_id: str
    content_type: str
    source: str
    options: dict[str, Any]
    job_info: dict[str, Any]


@dataclass
class ConvertOutcome:
    """What a slot reports for one job: markdown+metadata, or a reason it failed."""

    ok: bool
    markdown: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    recycled: bool = False  # the slot process was killed or died during this job


class SlotAborted(Exception):
    """The agent asked the slot to give up the job (hard shutdown)."""


# asked while a job converts: seconds between SIGTERM and SIGKILL when the operator cancelled
# the job, None while it should go on
CancelGrace = Callable[[], float | None]


def _child_main(conn: Connection, settings_blob: dict[str, Any], gpu: str | None) -> None:
    """Runs in the slot process: its own session (so the parent can kill the whole group),
    its GPU binding, then a loop converting one request at a time with cached converters."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a slot stops
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    inherited = drop_openmp_limits()
    from morag_fleet.agent.slotheap import keep_freed_memory
    from morag_fleet.convert.base import ConversionError
    from morag_fleet.convert.registry import build_converter
    from morag_fleet.cpu import cpu_budget
    from morag_fleet.log import configure_logging
    from morag_fleet.settings import AgentSettings

    settings = AgentSettings(**settings_blob)
    configure_logging(settings.log_level, settings.log_format,
                      worker_id=settings.worker_id, slot=os.getpid())
    keep_freed_memory()  # before any converter allocates
    threads = cpu_budget(settings.max_concurrent_jobs, settings.slot_threads).threads_per_slot
    if inherited:
        log.warning("openmp_environment_ignored", ignored=inherited, threads=threads,
                    hint="set slot_threads (or converter_options) to change a slot's threads")
    converters: dict[str, Any] = {}
    while True:
        try:
            request: ConvertRequest | None = conn.recv()
        except EOFError:
            return
        if request is None:
            return

        def progress(fraction: float | None, message: str | None,
                     _id: str = request.job_id) -> None:
            conn.send(("progress", _id, fraction, message))

        try:
            converter = converters.get(request.content_type)
            if converter is None:
                converter = build_converter(request.content_type, settings)
                converters[request.content_type] = converter
            options = {"threads": threads, **request.options}
            result = converter.convert(Path(request.source), options, request.job_info, progress)
            conn.send(("result", request.job_id, result.markdown, result.metadata))
        except ConversionError as exc:
            conn.send(("error", request.job_id, str(exc)))
        except Exception as exc:  # a converter bug must still produce a report
            conn.send(("error", request.job_id, f"converter error: {type(exc).__name__}: {exc}"))


OPENMP_LIMITS = ("OMP_THREAD_LIMIT", "OMP_NUM_THREADS")


def drop_openmp_limits() -> dict[str, str]:
    """Removes OpenMP limits inherited from the agent's environment, before any native library
    loads. Every library in a slot gets an explicit thread count from the CPU budget instead; an
    inherited limit below that count made CTranslate2 return empty transcripts."""
    return {name: os.environ.pop(name) for name in OPENMP_LIMITS if name in os.environ}


class SlotProcess:
    """One slot's child process, started lazily and recycled after a crash, timeout or OOM."""

    def __init__(self, index: int, settings_blob: dict[str, Any], gpu: str | None,
                 memory_limit_mb: int) -> None:
        self.index = index
        self.gpu = gpu
        self._settings_blob = settings_blob
        self._memory_limit = memory_limit_mb * 1024 * 1024 if memory_limit_mb > 0 else 0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._next_memory_check = 0.0
        self._next_tree_scan = 0.0
        self._tree: list[psutil.Process] = []
        self.jobs_done = 0
        self.recycles = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        parent_conn, child_conn = _spawn.Pipe(duplex=True)
        self._proc = _spawn.Process(
            target=_child_main, args=(child_conn, self._settings_blob, self.gpu),
            name=f"morag-slot-{self.index}", daemon=True,
        )
        self._proc.start()
        child_conn.close()
        self._conn = parent_conn
        log.debug("slot_started", slot=self.index, pid=self._proc.pid, gpu=self.gpu)

    def convert(
        self,
        request: ConvertRequest,
        timeout: float,
        on_progress: Callable[[float | None, str | None], None],
        should_abort: Callable[[], bool],
        tick: Callable[[], None] = lambda: None,
        cancel_grace: CancelGrace = lambda: None,
    ) -> ConvertOutcome:
        """Send one job and wait for its outcome, enforcing timeout, memory ceiling, abort and
        an operator's cancel. `tick` runs every watch interval (the caller renews leases)."""
        self._ensure_started()
        assert self._conn is not None
        self._conn.send(request)
        deadline = time.monotonic() + timeout
        self._next_memory_check = time.monotonic() + WATCH_INTERVAL  # short jobs never measure
        self._next_tree_scan = time.monotonic() + TREE_SCAN_INTERVAL
        while True:
            if self._conn.poll(WATCH_INTERVAL):
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):
                    return self._crashed()
                if message[0] == "result":
                    self.jobs_done += 1
                    return ConvertOutcome(True, markdown=message[2], metadata=message[3])
                if message[0] == "error":
                    self.jobs_done += 1
                    return ConvertOutcome(False, error=message[2])
                on_progress(message[2], message[3])
            # checked on every turn: a chatty converter must not starve the watchdog
            outcome = self._enforce_limits(timeout, deadline, should_abort)
            if outcome is None and (grace := cancel_grace()) is not None:
                ended_by = self.terminate(grace, "cancelled")
                outcome = ConvertOutcome(False, error=f"cancelled ({ended_by})", recycled=True)
            if outcome is not None:
                return outcome
            tick()

    def _enforce_limits(self, timeout: float, deadline: float,
                        should_abort: Callable[[], bool]) -> ConvertOutcome | None:
        if not self._proc.is_alive():
            return self._crashed()
        if should_abort():
            self.recycle("aborted")
            raise SlotAborted()
        if time.monotonic() > deadline:
            self.recycle("timeout")
            return ConvertOutcome(
                False, error=f"conversion timed out after {timeout:.0f} s", recycled=True)
        # At most once per interval, not once per message: per message it was a large share of the
        # agent's CPU on short jobs (tests/bench/bench_throughput.py --profile).
        if not self._memory_limit or time.monotonic() < self._next_memory_check:
            return None
        self._next_memory_check = time.monotonic() + WATCH_INTERVAL
        rss = self._tree_rss()
        if rss > self._memory_limit:
            self.recycle("memory")
            return ConvertOutcome(
                False, recycled=True,
                error=f"conversion exceeded the memory limit "
                      f"({rss // 2**20} MB > {self._memory_limit // 2**20} MB)")
        return None

    def _crashed(self) -> ConvertOutcome:
        if self._proc is not None:
            self._proc.join(timeout=2.0)  # the pipe closes a moment before the exit is reaped
        code = self._proc.exitcode if self._proc is not None else None
        self.recycle("crash")
        if code is not None and code < 0:
            try:
                what = f"signal {signal.Signals(-code).name}"
            except ValueError:
                what = f"signal {-code}"
        else:
            what = f"exit code {code}"
        return ConvertOutcome(False, error=f"converter process crashed ({what})", recycled=True)

    def _tree_rss(self) -> int:
        """The slot process and the tools it started. Reading a known process's RSS is one small
        file, but finding its children scans all of /proc, so that list is refreshed only every
        TREE_SCAN_INTERVAL: a new child tool is counted within a second."""
        try:
            if not self._tree or self._tree[0].pid != self._proc.pid:
                self._tree = [psutil.Process(self._proc.pid)]
            if time.monotonic() >= self._next_tree_scan:
                self._next_tree_scan = time.monotonic() + TREE_SCAN_INTERVAL
                self._tree = [self._tree[0], *self._tree[0].children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in self._tree:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def recycle(self, reason: str) -> None:
        """Kill the slot's whole process group; the next job starts a fresh process."""
        if self._proc is None:
            return
        pid = self._proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None
        self.recycles += 1
        log.warning("slot_recycled", slot=self.index, pid=pid, reason=reason)

    def terminate(self, grace: float, reason: str) -> str:
        """SIGTERM to the slot's process group, SIGKILL to whatever is left after `grace`
        seconds; returns the signal that ended the slot process. The group signal reaches the
        tools the converter started too, so none outlives the job."""
        if self._proc is None:
            return "not running"
        pid = self._proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        self._proc.join(timeout=max(0.0, grace))
        ended_by = "SIGTERM" if not self._proc.is_alive() else "SIGKILL"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # the slot or a tool that outlived it
        self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None
        self.recycles += 1
        log.warning("slot_recycled", slot=self.index, pid=pid, reason=reason, ended_by=ended_by)
        return ended_by

    def stop(self) -> None:
        """Ask an idle child to exit; kill its group if it does not within a second."""
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert self._conn is not None
            self._conn.send(None)
        self._proc.join(timeout=1.0)
        if self._proc.is_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.join(timeout=5)
        self._proc, self._conn = None, None
