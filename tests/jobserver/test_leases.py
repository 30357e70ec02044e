"""Leases: a claimed job whose worker stops renewing goes back to the queue, a bounded number
of times; stale workers cannot renew or report it."""

from __future__ import annotations

import time

from tests.support.jobserver import JOBS, running_jobserver


def _renew(server, job_id: str, worker: str):
    return server.request("POST", f"{JOBS}/{job_id}/lease", params={"worker_id": worker})


def test_poll_answer_advertises_the_lease(tmp_path, make_file) -> None:
    with running_jobserver(tmp_path / "s", lease_seconds=30) as server:
        server.create(make_file(), "document")
        answer = server.poll("w1", "document")
        assert answer["lease_seconds"] == 30


def test_expired_lease_requeues_then_fails_after_max_retries(tmp_path, make_file) -> None:
    with running_jobserver(tmp_path / "s", lease_seconds=1, max_retries=1) as server:
        job_id = server.create(make_file(), "document")
        assert server.poll("w1", "document")["job_id"] == job_id
        requeued = server.wait_for(lambda: (s := server.status(job_id))["status"] == "pending"
                                   and s, 30, "the lapsed job to be re-queued")
        assert requeued["retry_count"] == 1
        assert requeued["worker_id"] is None

        assert server.poll("w2", "document")["job_id"] == job_id
        stale = server.put_result(job_id, True, "from the worker that lost it", worker_id="w1")
        assert stale.status_code == 409
        assert _renew(server, job_id, "w1").status_code == 409

        failed = server.wait_for(lambda: (s := server.status(job_id))["status"] == "failed"
                                 and s, 30, "the job to fail")
        assert failed["error_message"] == "lease expired 2 times"
        assert server.poll("w3", "document")["job_id"] is None
        assert server.stats()["lease_expiries"] == 2


def test_renewed_lease_keeps_the_job(tmp_path, make_file) -> None:
    with running_jobserver(tmp_path / "s", lease_seconds=4, max_retries=0) as server:
        job_id = server.create(make_file(), "document")
        server.poll("w1", "document")
        end = time.monotonic() + 8
        while time.monotonic() < end:
            renewed = _renew(server, job_id, "w1")
            assert renewed.status_code == 200
            assert "lease_expires_at" in renewed.json()
            time.sleep(0.25)
        assert server.status(job_id)["status"] == "processing"
        assert server.put_result(job_id, True, "kept", worker_id="w1").status_code == 200
        assert server.status(job_id)["status"] == "completed"


def test_renew_unknown_or_not_processing_job(server, make_file) -> None:
    assert _renew(server, "nope", "w1").status_code == 404
    job_id = server.create(make_file(), "document")
    assert _renew(server, job_id, "w1").status_code == 409
    assert server.request("POST", f"{JOBS}/{job_id}/lease").status_code == 422


def test_late_result_for_a_requeued_job_is_refused(tmp_path, make_file) -> None:
    """Once the lease lapsed the job has no holder: the late worker is told so (409) and the
    job waits in the queue for the next one."""
    with running_jobserver(tmp_path / "s", lease_seconds=1, max_retries=3) as server:
        job_id = server.create(make_file(), "document")
        server.poll("w1", "document")
        server.wait_for(lambda: server.status(job_id)["status"] == "pending", 30, "re-queue")
        assert server.put_result(job_id, True, "late", worker_id="w1").status_code == 409
        assert server.poll("w2", "document")["job_id"] == job_id
        assert server.put_result(job_id, True, "fresh", worker_id="w2").status_code == 200
        assert server.result(job_id)["content"] == "fresh"


def test_lease_seconds_zero_turns_leases_off(tmp_path, make_file) -> None:
    with running_jobserver(tmp_path / "s", lease_seconds=0) as server:
        job_id = server.create(make_file(), "document")
        answer = server.poll("w1", "document")
        assert answer["job_id"] == job_id
        assert "lease_seconds" not in answer
        assert _renew(server, job_id, "w1").status_code == 404
