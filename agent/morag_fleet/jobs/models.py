"""The jobs API's data, checked at the boundary: a claimed job, a result, a downloaded source.

`Job.from_poll` is the one place a poll answer is trusted; everything after it can rely on a job
id that is safe in a URL path and a directory name, and on a plain dict of task options.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from morag_fleet.jobs.errors import ApiProtocolError

# MoRAG hands out uuid4 strings; anything with path or URL syntax in it is refused, because the id
# becomes part of request paths and of the per-job directory name.
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_POLL_FIELDS = ("job_id", "source_file_url", "content_type", "task_options")
# Keys MoRAG's ingestion sets itself; ours would override them.
RESERVED_METADATA_KEYS = ("source_path", "remote_job_id")


def _require_str(data: dict[str, Any], key: str, max_len: int = 8192) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiProtocolError(
            f"poll answer field {key!r} must be a non-empty string, got {_describe(value)}")
    if len(value) > max_len:
        raise ApiProtocolError(f"poll answer field {key!r} is {len(value)} characters long")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


@dataclass(frozen=True)
class Job:
    """A job this worker has claimed. `lease_seconds` is set only by servers with leases (the
    reference server); MoRAG's plain server never sends it."""

    job_id: str
    source_file_url: str
    content_type: str
    task_options: dict[str, Any] = field(default_factory=dict)
    lease_seconds: float | None = None

    @staticmethod
    def claimed_id(data: Any) -> str | None:
        """The job id of a poll answer that is otherwise malformed: the server has marked that
        job as ours, so it must still be reported (as failed), or it stays processing forever."""
        job_id = data.get("job_id") if isinstance(data, dict) else None
        return job_id if isinstance(job_id, str) and _JOB_ID.match(job_id) else None

    @classmethod
    def from_poll(cls, data: Any) -> Job | None:
        """The job in a poll answer; None for MoRAG's "no job" (200 with every field null)."""
        if not isinstance(data, dict):
            raise ApiProtocolError(f"poll answer must be a JSON object, got {_describe(data)}")
        if not any(key in data for key in _POLL_FIELDS):
            raise ApiProtocolError(
                "poll answer has none of job_id, source_file_url, content_type, task_options; "
                "is api_base_url a MoRAG server?")
        if all(data.get(key) is None for key in _POLL_FIELDS):
            return None
        job_id = _require_str(data, "job_id", max_len=128)
        if not _JOB_ID.match(job_id):
            raise ApiProtocolError(f"poll answer job_id {job_id[:60]!r} has unsafe characters")
        url = _require_str(data, "source_file_url")
        if not (url.startswith("/") or url.startswith(("http://", "https://"))):
            raise ApiProtocolError(f"poll answer source_file_url {url[:80]!r} is not a URL path")
        content_type = _require_str(data, "content_type", max_len=64)
        options = data.get("task_options")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise ApiProtocolError(
                f"poll answer task_options must be an object, got {_describe(options)}")
        return cls(job_id, url, content_type, dict(options), _lease(data.get("lease_seconds")))


def _lease(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value <= 0:
        raise ApiProtocolError(f"poll answer lease_seconds must be > 0, got {_describe(value)}")
    return float(value)


@dataclass(frozen=True)
class JobResult:
    """What is sent with PUT /{id}/result: markdown on success, a reason on failure."""

    success: bool
    content: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    processing_time: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The request body. Keys MoRAG sets itself (`source_path`, `remote_job_id`) are dropped
        from metadata: ours would override its own and point ingestion at the worker's temp path.
        """
        body: dict[str, Any] = {"success": bool(self.success)}
        if self.content is not None:
            body["content"] = self.content
        metadata = {k: v for k, v in self.metadata.items() if k not in RESERVED_METADATA_KEYS}
        if metadata:
            body["metadata"] = metadata
        if self.error_message is not None:
            body["error_message"] = self.error_message
        if self.processing_time is not None:
            body["processing_time"] = float(self.processing_time)
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        """Back from `to_json` (the outbox stores results as JSON)."""
        if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
            raise ValueError("a job result needs a boolean 'success'")
        return cls(
            success=data["success"],
            content=data.get("content"),
            metadata=dict(data.get("metadata") or {}),
            error_message=data.get("error_message"),
            processing_time=data.get("processing_time"),
        )


@dataclass(frozen=True)
class DownloadedFile:
    """A complete source file inside the job's directory, with what was measured on the way."""

    path: Path
    original_name: str  # the server's name, for display only: not a path, control chars removed
    size: int
    sha256: str
    mime_type: str  # the response's Content-Type, without parameters


ConnectionKind = Literal["ok", "unreachable", "tls", "auth", "not_morag", "error"]


@dataclass(frozen=True)
class ConnectionReport:
    """The answer of `test-connection`: one kind a person can act on, and why."""

    ok: bool
    kind: ConnectionKind
    message: str
