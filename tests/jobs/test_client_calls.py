"""submit_result, job_status and renew_lease against scripted loopback servers."""

from __future__ import annotations

import json
import time

import pytest

from morag_fleet.jobs.errors import (
    ApiAuthError,
    ApiConflict,
    ApiNotFound,
    ApiProtocolError,
    ApiUnavailable,
)
from morag_fleet.jobs.models import JobResult

from .loopback import TOKEN, Req, make_client

JOB_ID = "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b"
RESULT = JobResult(success=True, content="# Document: a.txt\n\nhello", processing_time=0.25,
                   metadata={"content_type": "document", "file_name": "a.txt",
                             "source_path": "/tmp/morag_remote/x/a.txt"})


def test_submit_puts_the_result_once_and_returns_the_answer(serve) -> None:
    server = serve(lambda req: req.json(200, {"status": "completed", "ingestion_continued": True}))
    with make_client(server.url) as client:
        answer = client.submit_result(JOB_ID, RESULT)
    assert answer == {"status": "completed", "ingestion_continued": True}
    [seen] = server.seen
    assert (seen.method, seen.path) == ("PUT", f"/api/v1/remote-jobs/{JOB_ID}/result")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(seen.body)
    assert body["success"] is True and body["content"].startswith("# Document")
    assert "source_path" not in body["metadata"]


@pytest.mark.parametrize(("status", "error"), [(404, ApiNotFound), (409, ApiConflict),
                                               (422, ApiProtocolError), (401, ApiAuthError)])
def test_submit_errors(serve, status: int, error: type) -> None:
    server = serve(lambda req: req.json(status, {"detail": f"answer {status}"}))
    with make_client(server.url) as client, pytest.raises(error, match=f"answer {status}"):
        client.submit_result(JOB_ID, RESULT)
    assert len(server.seen) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_submit_is_never_retried_blindly(serve, status: int) -> None:
    """MoRAG ingests inside the PUT; a second PUT re-runs ingestion. The caller decides."""
    server = serve(lambda req: req.json(status, {"detail": "ingestion failed"}))
    with make_client(server.url) as client, pytest.raises(ApiUnavailable) as caught:
        client.submit_result(JOB_ID, RESULT)
    assert caught.value.status == status
    assert len(server.seen) == 1


def test_submit_timeout_is_unavailable_after_one_request(serve) -> None:
    def slow(req: Req) -> None:
        time.sleep(2.0)
        req.json(200, {"status": "completed", "ingestion_continued": True})

    server = serve(slow)
    with make_client(server.url, submit_timeout=0.3) as client, \
            pytest.raises(ApiUnavailable, match="submit"):
        client.submit_result(JOB_ID, RESULT)
    time.sleep(2.2)  # give a (wrong) retry the time to show up before counting
    assert len(server.seen) == 1


def test_submit_answer_must_be_an_object(serve) -> None:
    server = serve(lambda req: req.send(200, b"OK", {"Content-Type": "text/plain"}))
    with make_client(server.url) as client, pytest.raises(ApiProtocolError, match="not JSON"):
        client.submit_result(JOB_ID, RESULT)


def test_status_is_read_with_retries(serve) -> None:
    status = {"job_id": JOB_ID, "status": "processing", "worker_id": "worker-test-1",
              "created_at": "2026-11-29T05:50:30.189680", "started_at": None,
              "completed_at": None, "error_message": None, "retry_count": 0,
              "estimated_completion": None}

    def handle(req: Req) -> None:
        if req.index == 0:
            req.json(503, {"detail": "busy"})
        else:
            req.json(200, status)

    server = serve(handle)
    with make_client(server.url) as client:
        assert client.job_status(JOB_ID) == status
    assert [s.path for s in server.seen] == [f"/api/v1/remote-jobs/{JOB_ID}/status"] * 2


def test_status_errors(serve) -> None:
    def handle(req: Req) -> None:
        if "gone" in req.path:
            req.json(404, {"detail": "Job gone not found"})
        else:
            req.json(200, {"job_id": JOB_ID})

    server = serve(handle)
    with make_client(server.url) as client:
        with pytest.raises(ApiNotFound, match="not found"):
            client.job_status("gone")
        with pytest.raises(ApiProtocolError, match="status"):
            client.job_status(JOB_ID)


def test_job_ids_are_quoted_into_paths(serve) -> None:
    server = serve(lambda req: req.json(404, {"detail": "no"}))
    with make_client(server.url) as client, pytest.raises(ApiNotFound):
        client.job_status("../../admin?x=1")
    assert server.seen[0].path == "/api/v1/remote-jobs/..%2F..%2Fadmin%3Fx%3D1/status"


@pytest.mark.parametrize(("status", "expected"), [(200, True), (404, False), (409, False),
                                                  (405, False)])
def test_renew_lease(serve, status: int, expected: bool) -> None:
    server = serve(lambda req: req.json(status, {"lease_seconds": 30}))
    with make_client(server.url) as client:
        assert client.renew_lease(JOB_ID) is expected
    [seen] = server.seen
    assert (seen.method, seen.path) == ("POST", f"/api/v1/remote-jobs/{JOB_ID}/lease")
    assert seen.query == {"worker_id": ["worker-test-1"]}


def test_renew_lease_refused_token_is_an_auth_error(serve) -> None:
    server = serve(lambda req: req.json(401, {"detail": "bad token"}))
    with make_client(server.url) as client, pytest.raises(ApiAuthError):
        client.renew_lease(JOB_ID)
