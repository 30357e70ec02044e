"""The job store on a real SQLite file, driven with explicit clock values: expiry from creation
(the `--expire` rule), claim order, and claims from several threads."""

from __future__ import annotations

import threading
from collections import Counter

from morag_fleet.jobserver.config import ServerConfig
from morag_fleet.jobserver.store import JobStore, NewJob, Outcome, ResultVerdict


def _new(config: ServerConfig, content_type: str, now: float) -> NewJob:
    expiry = config.expiry_after(content_type)
    return NewJob(content_type, "/tmp/x", "x", None, {}, now + expiry if expiry else None)


def test_expire_rule_follows_morag_per_type(tmp_path) -> None:
    on = ServerConfig(tmp_path, expire=True)
    assert [on.expiry_after(t) for t in ("audio", "video", "document", "web")] == [
        1800, 3600, 900, 3600]
    assert ServerConfig(tmp_path).expiry_after("audio") is None


def test_expired_pending_jobs_are_not_claimed_and_fail_visibly(tmp_path) -> None:
    config = ServerConfig(tmp_path, expire=True)
    store = JobStore(tmp_path / "jobs.db")
    document = store.create(_new(config, "document", now=0), now=0)  # expires at 900
    audio = store.create(_new(config, "audio", now=0), now=0)  # expires at 1800
    assert store.claim("w", ["document", "audio"], now=1000, lease_seconds=None).job_id == (
        audio.job_id)
    assert store.claim("w", ["document"], now=1000, lease_seconds=None) is None
    assert store.expire_unclaimed(now=1000) == [document.job_id]
    failed = store.get(document.job_id)
    assert (failed.status, failed.error_message) == (
        "failed", "job expired before a worker claimed it")


def test_jobs_without_expiry_never_expire(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job = store.create(_new(ServerConfig(tmp_path), "document", now=0), now=0)
    assert store.expire_unclaimed(now=10**9) == []
    assert store.claim("w", ["document"], now=10**9, lease_seconds=None).job_id == job.job_id


def test_result_verdicts(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job = store.create(_new(ServerConfig(tmp_path), "web", now=0), now=0)
    store.claim("w1", ["web"], now=1, lease_seconds=60)
    ok = Outcome(True, "md", None, None, 1.0)
    assert store.submit_result(job.job_id, ok, "w2", now=2)[0] is ResultVerdict.CONFLICT
    assert store.submit_result(job.job_id, ok, "w1", now=2)[0] is ResultVerdict.APPLIED
    assert store.submit_result(job.job_id, ok, "w1", now=3)[0] is ResultVerdict.DUPLICATE
    assert store.submit_result(job.job_id, ok, None, now=3)[0] is ResultVerdict.CONFLICT
    assert store.submit_result(job.job_id, ok, "w2", now=3)[0] is ResultVerdict.CONFLICT
    failure = Outcome(False, None, None, "boom", None)
    assert store.submit_result(job.job_id, failure, "w1", now=4)[0] is ResultVerdict.CONFLICT
    assert store.submit_result("missing", ok, None, now=4)[0] is ResultVerdict.NOT_FOUND


def test_two_stores_on_one_file_never_share_a_claim(tmp_path) -> None:
    """Two store objects stand in for two server processes on one database file."""
    stores = [JobStore(tmp_path / "jobs.db"), JobStore(tmp_path / "jobs.db")]
    config = ServerConfig(tmp_path)
    ids = {stores[0].create(_new(config, "audio", now=0), now=0).job_id for _ in range(200)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(store: JobStore, worker: str) -> None:
        while (job := store.claim(worker, ["audio"], now=1, lease_seconds=None)) is not None:
            with lock:
                claimed.append(job.job_id)

    threads = [threading.Thread(target=claim_all, args=(stores[n % 2], f"w{n}")) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(claimed) == Counter(ids)
