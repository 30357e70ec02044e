"""One job's path through a slot: download, convert in the slot process, spool, hand over for
delivery (the slot is free again once the result is durable; the deliverer tells the job's end).

Every step is journaled before it happens, and every way out of `run` leaves a spooled result
(success or a failure a person can act on), so a claimed job is always reported.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from morag_fleet.agent.delivery import BackgroundDelivery
from morag_fleet.agent.journal import Journal
from morag_fleet.agent.slots import ConvertOutcome, ConvertRequest, SlotAborted, SlotProcess
from morag_fleet.convert.mimetype import detect_mime_type, is_specific
from morag_fleet.convert.registry import merged_options
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.errors import ApiError, ApiUnavailable
from morag_fleet.jobs.models import DownloadedFile, Job, JobResult
from morag_fleet.log import get_logger
from morag_fleet.settings import AgentSettings

log = get_logger(__name__)
FORBIDDEN_METADATA = ("source_path", "remote_job_id")
ABORTED_REASON = "aborted: the agent was shut down before the conversion finished"
CANCEL_PREFIX = "cancelled by operator"
DEFAULT_CANCEL_GRACE = 10.0
# what the agent answers a cancel with
CANCELLING, TOO_LATE = "cancelling", "too_late"


def cancel_reason(note: str | None) -> str:
    """The failure MoRAG gets for a cancelled job."""
    return f"{CANCEL_PREFIX}: {note}" if note else CANCEL_PREFIX


class JobAborted(Exception):
    """Hard shutdown reached this job; the caller spools the abort failure."""


class ActiveJob:
    """What the heartbeat shows about a running job; written by its runner thread, except the
    cancel request, which the telemetry thread may set until the result is about to be
    spooled (`close_cancel_window`), under the job's lock."""

    def __init__(self, job: Job, slot: int) -> None:
        self.job = job
        self.slot = slot
        self.phase = "claimed"
        self.progress: float | None = None
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._cancel: tuple[str | None, float] | None = None  # (note, grace) once cancelled
        self._window_open = True

    def request_cancel(self, note: str | None, grace: float) -> str:
        """CANCELLING when the job will be reported cancelled, TOO_LATE once its result is
        being spooled or delivered (then the job's own outcome stands)."""
        with self._lock:
            if not self._window_open:
                return TOO_LATE
            if self._cancel is None:
                self._cancel = (note, grace)
            return CANCELLING

    def cancel_grace(self) -> float | None:
        cancel = self._cancel
        return None if cancel is None else cancel[1]

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None

    @property
    def cancel_note(self) -> str | None:
        """The first cancel's note: later requests do not change what MoRAG is told."""
        cancel = self._cancel
        return None if cancel is None else cancel[0]

    def close_cancel_window(self) -> tuple[bool, str | None]:
        """From here on a cancel is too late; (was it cancelled, the operator's note)."""
        with self._lock:
            self._window_open = False
            self.phase = "submitting"
            return (self._cancel is not None, self._cancel[0] if self._cancel else None)

    def view(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "content_type": self.job.content_type,
                "phase": self.phase, "progress": self.progress, "slot": self.slot,
                "started_at": self.started_at}


class JobRunner:
    """Shared by all slot threads; holds no per-job state itself."""

    def __init__(self, settings: AgentSettings, client: MoragClient, journal: Journal,
                 delivery: BackgroundDelivery, emit: Callable[..., None], abort: threading.Event,
                 content_types: list[str]) -> None:
        self.settings = settings
        self.content_types = content_types
        self.client = client
        self.journal = journal
        self.delivery = delivery
        self.emit = emit  # emit(job_id, phase, **fields) -> telemetry
        self.abort = abort

    def run(self, active: ActiveJob, slot: SlotProcess) -> bool:
        """Process one claimed job to a spooled result and hand it over for delivery; True when
        the conversion succeeded."""
        job = active.job
        job_dir = self.settings.temp_dir / _safe_dir_name(job.job_id)
        started = time.monotonic()
        timings: dict[str, float] = {}
        try:
            result = self._produce_result(active, slot, job_dir, timings)
        except JobAborted:
            result = JobResult(success=False, error_message=ABORTED_REASON)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
        cancelled, note = active.close_cancel_window()
        if cancelled:  # whatever the conversion did, the operator's cancel is the outcome
            result = JobResult(success=False, error_message=cancel_reason(note))
        result = JobResult(success=result.success, content=result.content,
                           metadata=result.metadata, error_message=result.error_message,
                           processing_time=round(time.monotonic() - started, 3))
        self.journal.spool_result(job.job_id, result.to_json())
        self.emit(job.job_id, "spooled", success=result.success, error=result.error_message,
                  content_type=job.content_type, **timings)
        self.delivery.submit(job.job_id)  # the deliverer tells the job's end
        return result.success

    def _produce_result(self, active: ActiveJob, slot: SlotProcess, job_dir: Path,
                        timings: dict[str, float]) -> JobResult:
        """`timings` gets the seconds spent downloading and converting (the fleet's metrics)."""
        job = active.job
        if active.cancelled:  # cancelled before a slot took it: nothing to start
            return JobResult(success=False)
        if job.content_type not in self.content_types:
            return JobResult(success=False, error_message=(
                f"content type {job.content_type!r} is not converted by this agent "
                f"(it converts: {', '.join(self.content_types) or 'nothing'})"))
        job_dir.mkdir(parents=True, exist_ok=True)
        active.phase = "downloading"
        self.journal.set_phase(job.job_id, "downloading")
        self.emit(job.job_id, "downloading")
        t0 = time.monotonic()
        try:
            source = self._download(job, job_dir)
        except ApiError as exc:  # too big, truncated, refused, gone: a reason, not a crash
            return JobResult(success=False, error_message=f"download failed: {exc}")
        timings["download_s"] = round(time.monotonic() - t0, 3)
        log.info("job_downloaded", job_id=job.job_id, size=source.size,
                 duration_s=timings["download_s"])
        if active.cancelled:  # cancelled while downloading: the download is all it cost
            return JobResult(success=False)
        active.phase = "converting"
        self.journal.set_phase(job.job_id, "converting")
        self.emit(job.job_id, "converting", progress=0.0)
        t0 = time.monotonic()
        outcome = self._convert(active, slot, source)
        timings["convert_s"] = round(time.monotonic() - t0, 3)
        if not outcome.ok:
            return JobResult(success=False, error_message=outcome.error)
        metadata = _clean_metadata(outcome.metadata, job, source)
        return JobResult(success=True, content=outcome.markdown, metadata=metadata)

    def _download(self, job: Job, job_dir: Path) -> DownloadedFile:
        """Retries while the API is away, without limit (`RetryPolicy`, layer 3): the job is
        ours and must still be reported."""
        backoff = self.client.retry.job_waits.backoff()
        while True:
            if self.abort.is_set():
                raise JobAborted()
            try:
                return self.client.download(job, job_dir, self.settings.max_download_bytes)
            except ApiUnavailable as exc:
                delay = backoff.next()
                log.warning("download_retry", job_id=job.job_id, error=str(exc),
                            retry_in=round(delay, 1))
                if self.abort.wait(delay):
                    raise JobAborted() from None

    def _convert(self, active: ActiveJob, slot: SlotProcess, source: DownloadedFile
                 ) -> ConvertOutcome:
        job = active.job
        request = ConvertRequest(
            job_id=job.job_id, content_type=job.content_type, source=str(source.path),
            options=merged_options(job.content_type, self.settings, job.task_options),
            job_info={"file_name": source.original_name, "content_type": job.content_type,
                      "mime_type": source.mime_type, "file_size": source.size,
                      "checksum": source.sha256},
        )
        last_emit = [0.0]

        def on_progress(fraction: float | None, message: str | None) -> None:
            active.progress = fraction
            now = time.monotonic()
            if now - last_emit[0] >= 1.0:
                last_emit[0] = now
                self.emit(job.job_id, "converting", progress=fraction, message=message)

        t0 = time.monotonic()
        try:
            outcome = slot.convert(request, self.settings.job_timeout(job.content_type),
                                   on_progress, self.abort.is_set,
                                   cancel_grace=active.cancel_grace)
        except SlotAborted:
            raise JobAborted() from None
        if outcome.recycled:
            self.emit(job.job_id, "slot_recycled", slot=slot.index, reason=outcome.error)
        log.info("job_converted", job_id=job.job_id, ok=outcome.ok, slot=slot.index,
                 duration_s=round(time.monotonic() - t0, 3), error=outcome.error or None)
        return outcome


def _clean_metadata(metadata: dict[str, Any], job: Job, source: DownloadedFile) -> dict[str, Any]:
    """Fill what every result needs and drop keys that would override MoRAG's own. A missing
    (or octet-stream) `mime_type` is detected from the content, as the built-in converters do;
    the download's `Content-Type` only when the content and the name say nothing."""
    clean = {k: v for k, v in metadata.items() if k not in FORBIDDEN_METADATA}
    clean.setdefault("content_type", job.content_type)
    clean.setdefault("file_name", source.original_name)
    declared = clean.get("mime_type")
    if not (isinstance(declared, str) and is_specific(declared)):
        clean["mime_type"] = detect_mime_type(source.path, source.original_name,
                                              declared=source.mime_type)
    clean.setdefault("file_size", source.size)
    clean.setdefault("checksum", source.sha256)
    return clean


def _safe_dir_name(job_id: str) -> str:
    cleaned = "".join(c for c in job_id if c.isalnum() or c in "-_")[:80]
    return f"job-{cleaned or 'unnamed'}"
