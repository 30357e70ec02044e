"""MoRAG's remote-jobs endpoints, plus the optional extensions (upload, leases, long polling,
result read-back, counters). A client that knows only MoRAG's contract sees MoRAG's answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ..log import get_logger
from . import views
from .clock import iso_from_epoch, now_epoch
from .files import UploadTooLarge, display_name, store_upload
from .models import CreateJobRequest, SubmitResultRequest
from .sources import SourceRefused, checked_source
from .state import ServerState
from .store import Job, LeaseVerdict, NewJob, Outcome, ResultVerdict

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1/remote-jobs")


def server_state(request: Request) -> ServerState:
    return request.app.state.server


State = Annotated[ServerState, Depends(server_state)]


async def existing_job(job_id: str, state: State) -> Job:
    job = await state.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail="Job not found")
    return job


ExistingJob = Annotated[Job, Depends(existing_job)]


def _new_job(
    state: ServerState, content_type: str, path: Path, name: str, task_id: str | None, options: dict
) -> NewJob:
    expiry = state.config.expiry_after(content_type)
    return NewJob(
        content_type=content_type,
        source_file_path=str(path),
        original_name=name,
        ingestion_task_id=task_id,
        task_options=options,
        expires_at=now_epoch() + expiry if expiry else None,
    )


@router.post("/")
async def create_job(body: CreateJobRequest, state: State) -> dict[str, Any]:
    try:
        path = checked_source(body.source_file_path, state.config)
    except SourceRefused as exc:
        log.warning("source_refused", source_file_path=body.source_file_path)
        raise HTTPException(status_code=422, detail=str(exc)) from None
    new = _new_job(
        state, body.content_type, path, display_name(Path(body.source_file_path).name),
        body.ingestion_task_id,
        body.task_options,
    )
    return views.created(await state.create(new))


def _task_options_from_form(raw: str | None) -> dict[str, Any]:
    """The upload form carries task options as a JSON string; a bad one is a 422 shaped like
    FastAPI's own validation errors."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "msg": f"Invalid JSON: {exc.msg}"}
        loc = ("body", "task_options")
        raise RequestValidationError([{**error, "loc": loc, "input": raw}]) from exc
    if not isinstance(value, dict):
        error = {"type": "dict_type", "msg": "task_options must be a JSON object"}
        raise RequestValidationError([{**error, "loc": ("body", "task_options"), "input": raw}])
    return value


@router.post("/upload")
async def upload_job(
    state: State,
    file: Annotated[UploadFile, File()],
    content_type: Annotated[str, Form(min_length=1)],
    task_options: Annotated[str | None, Form()] = None,
    ingestion_task_id: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    options = _task_options_from_form(task_options)
    name = display_name(file.filename)
    try:
        path = await run_in_threadpool(
            store_upload, file.file, name, state.config.files_dir, state.config.max_upload_bytes
        )
    except UploadTooLarge as exc:
        raise HTTPException(status_code=413, detail=str(exc)) from None
    new = _new_job(state, content_type, path, name, ingestion_task_id, options)
    return views.created(await state.create(new))


@router.get("/poll")
async def poll(
    request: Request,
    state: State,
    worker_id: Annotated[str, Query(min_length=1)],
    content_types: Annotated[str, Query()],
    max_jobs: Annotated[int, Query(ge=1, le=100)] = 1,
    wait: Annotated[float, Query(ge=0)] = 0.0,
) -> dict[str, Any]:
    """Claims at most one job whatever `max_jobs` says: a job claimed but not returned would
    be orphaned. With `wait`, holds the request until a job arrives or the wait ends."""
    types = [t.strip() for t in content_types.split(",") if t.strip()]
    deadline = now_epoch() + min(wait, state.config.max_wait)
    signal = state.signal
    while True:
        generation = signal.generation
        if await request.is_disconnected():
            return views.no_job()  # nobody would read the answer: claim nothing
        job = await state.claim(worker_id, types)
        if job is not None:
            if await _gone(request, state, job, worker_id):
                return views.no_job()
            lease = state.config.lease_seconds if state.config.leases_enabled else None
            return views.claimed_job(job, lease)
        remaining = deadline - now_epoch()
        if signal.stopping or remaining <= 0:
            return views.no_job()
        if not await signal.wait_past(generation, remaining) or signal.stopping:
            return views.no_job()
        if await request.is_disconnected():
            return views.no_job()


async def _gone(request: Request, state: ServerState, job: Job, worker_id: str) -> bool:
    """The worker hung up while its claim was made (an agent shutting down closes its long
    poll): the claim is rolled back, so the job is not left processing by a worker that never
    learns of it."""
    if not await request.is_disconnected():
        return False
    await run_in_threadpool(state.store.unclaim, job.job_id, worker_id)
    log.info("claim_rolled_back", job_id=job.job_id, worker_id=worker_id,
             reason="the worker disconnected before the answer")
    return True


@router.get("/held")
async def held(
    state: State, worker_id: Annotated[str, Query(min_length=1)]
) -> dict[str, Any]:
    """The jobs this server has processing by `worker_id`, each shaped like a poll answer, so
    a worker whose own record of them was lost can run or report them (an extension; MoRAG
    answers 404)."""
    lease = state.config.lease_seconds if state.config.leases_enabled else None
    jobs = await run_in_threadpool(state.store.held, worker_id)
    return {"worker_id": worker_id, "jobs": [views.claimed_job(job, lease) for job in jobs]}


@router.get("/_stats")
async def stats(state: State) -> dict[str, int]:
    counts = await run_in_threadpool(state.store.stats)
    return {**counts, "long_polls_waiting": state.signal.waiting}


@router.get("/{job_id}/download")
async def download(job: ExistingJob, state: State) -> FileResponse:
    if job.status != "processing":
        raise HTTPException(status_code=403, detail="Job is not in processing state")
    try:  # checked again: a job stored before the roots were set, or a link changed since
        path = checked_source(job.source_file_path, state.config)
    except SourceRefused as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    if not await run_in_threadpool(path.is_file):
        raise HTTPException(status_code=404, detail="Source file not found")
    return FileResponse(path, media_type="application/octet-stream", filename=job.original_name)


@router.put("/{job_id}/result")
async def submit_result(
    job_id: str,
    body: SubmitResultRequest,
    state: State,
    worker_id: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """`worker_id` (an extension) names the reporting worker: only the job's holder is heard,
    so a worker whose lease ran out, or a caller naming nobody, cannot replace the holder's
    result (unless the server accepts anonymous results, as MoRAG does)."""
    outcome = Outcome(
        body.success, body.content, body.metadata, body.error_message, body.processing_time
    )
    verdict, job = await run_in_threadpool(
        state.store.submit_result, job_id, outcome, worker_id, now_epoch(),
        state.config.anonymous_results,
    )
    if verdict is ResultVerdict.NOT_FOUND or job is None:
        raise HTTPException(status_code=404, detail="Job not found")
    if verdict is ResultVerdict.CONFLICT:
        detail = f"Job is {job.status}" + (f" by worker {job.worker_id}" if job.worker_id else "")
        log.warning("job_result_refused", job_id=job_id, worker_id=worker_id, status=job.status)
        raise HTTPException(
            status_code=409,
            detail=f"{detail}; result not accepted: only the worker holding the job may report it",
        )
    log.info("job_result", job_id=job_id, status=job.status, verdict=verdict.value)
    return views.result_accepted(job)


@router.get("/{job_id}/status")
async def job_status(job: ExistingJob) -> dict[str, Any]:
    return views.status(job)


@router.get("/{job_id}/result")
async def job_result(job: ExistingJob) -> dict[str, Any]:
    return views.result(job)


@router.post("/{job_id}/lease")
async def renew_lease(
    job_id: str, state: State, worker_id: Annotated[str, Query(min_length=1)]
) -> dict[str, Any]:
    if not state.config.leases_enabled:
        raise HTTPException(status_code=404, detail="Leases are disabled on this server")
    verdict, until = await run_in_threadpool(
        state.store.renew_lease, job_id, worker_id, now_epoch(), state.config.lease_seconds
    )
    if verdict is LeaseVerdict.NOT_FOUND:
        raise HTTPException(status_code=404, detail="Job not found")
    if verdict is LeaseVerdict.NOT_HELD:
        raise HTTPException(status_code=409, detail="Job is not processing by this worker")
    return {"lease_expires_at": iso_from_epoch(until), "lease_seconds": state.config.lease_seconds}
