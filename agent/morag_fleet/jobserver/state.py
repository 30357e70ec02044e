"""What the endpoints share: settings, the job store (called from worker threads so SQLite never
blocks the event loop) and the signal that wakes long polls."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from ..log import get_logger
from .clock import now_epoch
from .config import ServerConfig
from .faults import FaultRules
from .sources import remove_finished_uploads
from .store import Job, JobStore, NewJob
from .wakeup import JobSignal

log = get_logger(__name__)


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        config.files_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(config.db_path)
        self.signal = JobSignal()
        self.faults = FaultRules()

    async def create(self, new: NewJob) -> Job:
        job = await run_in_threadpool(self.store.create, new, now_epoch())
        log.info("job_created", job_id=job.job_id, content_type=job.content_type)
        await self.signal.notify()
        return job

    async def get(self, job_id: str) -> Job | None:
        return await run_in_threadpool(self.store.get, job_id)

    async def claim(self, worker_id: str, content_types: Sequence[str]) -> Job | None:
        await self.sweep()
        lease = self.config.lease_seconds if self.config.leases_enabled else None
        job = await run_in_threadpool(
            self.store.claim, worker_id, content_types, now_epoch(), lease
        )
        if job is not None:
            log.info("job_claimed", job_id=job.job_id, worker_id=worker_id)
        return job

    async def sweep(self) -> None:
        """Return jobs with lapsed leases to the queue (or fail them after too many tries) and
        fail expired unclaimed jobs; waiting pollers are woken when work came back."""
        now = now_epoch()
        expired = await run_in_threadpool(self.store.expire_leases, now, self.config.max_retries)
        for job_id in expired.requeued:
            log.warning("lease_expired_requeued", job_id=job_id)
        for job_id in expired.failed:
            log.warning("lease_expired_failed", job_id=job_id)
        if self.config.expire:
            for job_id in await run_in_threadpool(self.store.expire_unclaimed, now):
                log.warning("job_expired_unclaimed", job_id=job_id)
        if expired.requeued:
            await self.signal.notify()

    async def remove_finished_uploads(self) -> None:
        """Uploads of ended jobs are the server's copies; nobody will download them again."""
        removed = await run_in_threadpool(
            remove_finished_uploads, self.store, self.config.files_dir
        )
        for path in removed:
            log.info("upload_removed", path=str(path))

    def close(self) -> None:
        self.store.close()
