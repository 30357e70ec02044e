"""The JSON shapes the server answers with, built from a stored job."""

from __future__ import annotations

from typing import Any

from .clock import iso_from_epoch
from .store import Job

POLL_FIELDS = ("job_id", "source_file_url", "content_type", "task_options")
DOWNLOAD_URL = "/api/v1/remote-jobs/{job_id}/download"


def no_job() -> dict[str, Any]:
    """MoRAG's "nothing to do": 200 with every field null (never 204)."""
    return dict.fromkeys(POLL_FIELDS)


def claimed_job(job: Job, lease_seconds: float | None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "job_id": job.job_id,
        "source_file_url": DOWNLOAD_URL.format(job_id=job.job_id),
        "content_type": job.content_type,
        "task_options": job.task_options,
    }
    if lease_seconds:
        answer["lease_seconds"] = lease_seconds
        answer["lease_expires_at"] = iso_from_epoch(job.lease_expires_at)
    return answer


def created(job: Job) -> dict[str, Any]:
    created_at = iso_from_epoch(job.created_at)
    return {"job_id": job.job_id, "status": job.status, "created_at": created_at}


def status(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "worker_id": job.worker_id,
        "created_at": iso_from_epoch(job.created_at),
        "started_at": iso_from_epoch(job.started_at),
        "completed_at": iso_from_epoch(job.completed_at),
        "error_message": job.error_message,
        "retry_count": job.retry_count,
        "estimated_completion": None,
    }


def result(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "content": job.content,
        "metadata": job.metadata,
        "error_message": job.error_message,
        "processing_time": job.processing_time,
    }


def result_accepted(job: Job) -> dict[str, Any]:
    """`ingestion_continued` is true when the result was stored for the ingestion step; this
    server has no ingestion, so it means "success stored"."""
    return {"status": job.status, "ingestion_continued": bool(job.success)}
