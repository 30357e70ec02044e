"""A stand-in for MoRAG's own remote-jobs server, behaving as that server does
(docs/morag-compatibility.md), warts included: one JSON file per job, 200 with nulls when idle,
no leases, no auth (a token is accepted and ignored), no requeue, no long poll (`wait` ignored),
`max_jobs` > 1 claims several jobs but returns only the first, POST needs the trailing slash,
HEAD on download is 405, download only while processing, a synchronous (optionally slow) result
PUT that overwrites whatever was there, and expired jobs never handed out.

Run as a real process: `python -m tests.support.morag_double --port P --data-dir D
[--result-delay S] [--expiry-seconds S]`; tests use `running_morag_double(data_dir)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel

from .process import ServerProcess

JOBS = "/api/v1/remote-jobs"
EXPIRY_MINUTES = {"audio": 30, "video": 60, "document": 15}


class CreateJob(BaseModel):
    source_file_path: str
    content_type: str
    ingestion_task_id: str
    task_options: dict[str, Any] = {}


class SubmitResult(BaseModel):
    success: bool
    content: str | None = None
    metadata: dict[str, Any] | None = None
    error_message: str | None = None
    processing_time: float | None = None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class JobFiles:
    """MoRAG's file-backed repository: a JSON file per job, read and written whole."""

    def __init__(self, data_dir: Path, expiry_seconds: float | None) -> None:
        self.dir = data_dir / "remote_jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.expiry_seconds = expiry_seconds

    def path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def load(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(job_id).read_text())
        except (OSError, ValueError):
            return None

    def save(self, job: dict[str, Any]) -> None:
        self.path(job["job_id"]).write_text(json.dumps(job))

    def all_by_age(self) -> list[dict[str, Any]]:
        jobs = [json.loads(p.read_text()) for p in self.dir.glob("*.json")]
        return sorted(jobs, key=lambda job: job["created_at"])

    def expired(self, job: dict[str, Any]) -> bool:
        seconds = self.expiry_seconds
        if seconds is None:
            seconds = EXPIRY_MINUTES.get(job["content_type"], 60) * 60
        created = datetime.fromisoformat(job["created_at"])
        return utcnow() > created + timedelta(seconds=seconds)


def build_router(files: JobFiles, result_delay: float) -> APIRouter:
    router = APIRouter(prefix=JOBS)

    @router.post("/")
    async def create(body: CreateJob) -> dict[str, Any]:
        job = {"job_id": str(uuid.uuid4()), "status": "pending", "worker_id": None,
               "created_at": utcnow().isoformat(), "started_at": None, "completed_at": None,
               "error_message": None, "retry_count": 0, "content": None, "metadata": None,
               **body.model_dump()}
        files.save(job)
        return {"job_id": job["job_id"], "status": "pending", "created_at": job["created_at"]}

    @router.get("/poll")
    async def poll(worker_id: str, content_types: str, max_jobs: int = 1) -> dict[str, Any]:
        wanted = content_types.split(",")
        claimed = []
        for job in files.all_by_age():
            if len(claimed) >= max_jobs:
                break
            if job["status"] == "pending" and job["content_type"] in wanted:
                if files.expired(job):
                    continue
                job.update(status="processing", worker_id=worker_id,
                           started_at=utcnow().isoformat())
                files.save(job)
                claimed.append(job)
        if not claimed:
            return dict.fromkeys(("job_id", "source_file_url", "content_type", "task_options"))
        first = claimed[0]
        return {"job_id": first["job_id"], "source_file_url": f"{JOBS}/{first['job_id']}/download",
                "content_type": first["content_type"], "task_options": first["task_options"]}

    @router.get("/{job_id}/download")
    async def download(job_id: str) -> FileResponse:
        job = files.load(job_id)
        if job is None:
            raise HTTPException(404, "Job not found")
        if job["status"] != "processing":
            raise HTTPException(403, "Job is not in processing state")
        source = Path(job["source_file_path"])
        if not source.is_file():
            raise HTTPException(404, f"Source file not found: {source}")
        return FileResponse(source, media_type="application/octet-stream", filename=source.name)

    @router.put("/{job_id}/result")
    async def submit_result(job_id: str, body: SubmitResult) -> dict[str, Any]:
        job = files.load(job_id)
        if job is None:
            raise HTTPException(404, "Job not found")
        job.update(status="completed" if body.success else "failed", content=body.content,
                   metadata=body.metadata, error_message=body.error_message,
                   completed_at=utcnow().isoformat())
        files.save(job)
        await asyncio.sleep(result_delay)  # MoRAG runs its ingestion before answering
        return {"status": job["status"], "ingestion_continued": body.success}

    @router.get("/{job_id}/status")
    async def status(job_id: str) -> dict[str, Any]:
        job = files.load(job_id)
        if job is None:
            raise HTTPException(404, "Job not found")
        fields = ("job_id", "status", "worker_id", "created_at", "started_at", "completed_at",
                  "error_message", "retry_count")
        return {**{name: job[name] for name in fields}, "estimated_completion": None}

    return router


def create_app(data_dir: Path, result_delay: float = 0.0,
               expiry_seconds: float | None = None) -> FastAPI:
    app = FastAPI(title="MoRAG remote-jobs double")
    app.include_router(build_router(JobFiles(data_dir, expiry_seconds), result_delay))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return app


class MoragDouble(ServerProcess):
    ready_path = "/health"

    def __init__(self, data_dir: Path, *, port: int | None = None, result_delay: float = 0.0,
                 expiry_seconds: float | None = None, token: str | None = None) -> None:
        super().__init__(data_dir / "morag_double.log", port, token)
        self.data_dir = data_dir
        self.result_delay = result_delay
        self.expiry_seconds = expiry_seconds

    def argv(self) -> list[str]:
        args = ["-m", "tests.support.morag_double", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--result-delay", str(self.result_delay)]
        if self.expiry_seconds is not None:
            args += ["--expiry-seconds", str(self.expiry_seconds)]
        return args

    def create_job(self, path: Path, content_type: str, task_options: dict | None = None,
                   ingestion_task_id: str = "ingest-test") -> str:
        body = {"source_file_path": str(Path(path).resolve()), "content_type": content_type,
                "ingestion_task_id": ingestion_task_id, "task_options": task_options or {}}
        response = self.request("POST", f"{JOBS}/", json=body)
        response.raise_for_status()
        return str(response.json()["job_id"])

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.request("GET", f"{JOBS}/{job_id}/status")
        response.raise_for_status()
        return response.json()

    def job_record(self, job_id: str) -> dict[str, Any]:
        """The job's stored file, content included (MoRAG keeps it for its ingestion)."""
        return json.loads((self.data_dir / "remote_jobs" / f"{job_id}.json").read_text())


@contextmanager
def running_morag_double(data_dir: Path, *, port: int | None = None, result_delay: float = 0.0,
                         expiry_seconds: float | None = None) -> Iterator[MoragDouble]:
    double = MoragDouble(data_dir, port=port, result_delay=result_delay,
                         expiry_seconds=expiry_seconds)
    double.start()
    try:
        yield double
    finally:
        double.stop()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--result-delay", type=float, default=0.0)
    parser.add_argument("--expiry-seconds", type=float, default=None)
    args = parser.parse_args()
    app = create_app(args.data_dir, args.result_delay, args.expiry_seconds)
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, access_log=False,
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
