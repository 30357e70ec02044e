"""poll() against scripted loopback servers: MoRAG's answers, broken answers, and retries."""

from __future__ import annotations

import threading
import time

import pytest
from structlog.testing import capture_logs

from morag_fleet.jobs.errors import (
    ApiAuthError,
    ApiNotFound,
    ApiProtocolError,
    ApiUnavailable,
)
from morag_fleet.jobs.models import Job
from morag_fleet.jobs.retry import RetryPolicy, Waits

from .loopback import TOKEN, Req, make_client

JOB = {"job_id": "5d0c1e9a-3b7f-4a2e-8c61-9f4d2b7e0a13",
       "source_file_url": "/api/v1/remote-jobs/5d0c1e9a-3b7f-4a2e-8c61-9f4d2b7e0a13/download",
       "content_type": "document", "task_options": {"ocr": True}}
NULLS = dict.fromkeys(("job_id", "source_file_url", "content_type", "task_options"))


def test_a_job_is_claimed_with_max_jobs_1_and_the_bearer_token(serve) -> None:
    server = serve(lambda req: req.json(200, JOB))
    with make_client(server.url) as client:
        job = client.poll(["audio", "document"])
    assert job == Job(JOB["job_id"], JOB["source_file_url"], "document", {"ocr": True})
    [seen] = server.seen
    assert (seen.method, seen.path) == ("GET", "/api/v1/remote-jobs/poll")
    assert seen.query == {"worker_id": ["worker-test-1"], "content_types": ["audio,document"],
                          "max_jobs": ["1"]}
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


def test_wait_is_sent_only_when_positive(serve) -> None:
    server = serve(lambda req: req.json(200, NULLS))
    with make_client(server.url) as client:
        assert client.poll(["audio"], wait=0.0) is None
        assert client.poll(["audio"], wait=2.5) is None
    assert "wait" not in server.seen[0].query
    assert server.seen[1].query["wait"] == ["2.5"]
    assert server.seen[1].query["max_jobs"] == ["1"]


def test_no_token_means_no_authorization_header(serve) -> None:
    server = serve(lambda req: req.json(200, NULLS))
    with make_client(server.url, api_key=None) as client:
        assert client.poll(["audio"]) is None
    assert "Authorization" not in server.seen[0].headers


def test_long_poll_read_timeout_covers_the_wait(serve) -> None:
    """A server holding the poll for `wait` seconds is not a read timeout."""
    def slow(req: Req) -> None:
        time.sleep(1.5)
        req.json(200, JOB)

    server = serve(slow)
    with make_client(server.url, read_timeout=0.5) as client:
        assert client.poll(["document"], wait=5).job_id == JOB["job_id"]
    assert len(server.seen) == 1


@pytest.mark.parametrize("answer", ["nulls", "204"])
def test_no_job_is_none(serve, answer: str) -> None:
    server = serve(lambda req: req.json(200, NULLS) if answer == "nulls" else req.send(204))
    with make_client(server.url) as client:
        assert client.poll(["video"]) is None


@pytest.mark.parametrize(("body", "ctype", "complaint"), [
    (b"{not json", "application/json", "not JSON"),
    (b"<html><body>Welcome</body></html>", "text/html", "not JSON"),
    (b"[]", "application/json", "JSON object"),
    (b'{"job_id": "abc"}', "application/json", "source_file_url"),
    (b'{"job_id": 17, "source_file_url": "/x", "content_type": "audio"}', "application/json",
     "job_id"),
    (b'{"status": "ok"}', "application/json", "MoRAG"),
])
def test_malformed_answers_are_protocol_errors(serve, body: bytes, ctype: str,
                                               complaint: str) -> None:
    server = serve(lambda req: req.send(200, body, {"Content-Type": ctype}))
    with make_client(server.url) as client, pytest.raises(ApiProtocolError) as caught:
        client.poll(["audio"])
    assert complaint in str(caught.value)
    assert len(server.seen) == 1  # a malformed answer is not retried


def test_an_endless_answer_is_cut_off_not_buffered(serve) -> None:
    def flood(req: Req) -> None:
        req.start(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        chunk = b"x" * 65536
        for _ in range(400):  # 25 MiB, far over the 8 MiB limit for an API answer
            req.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        req.write(b"0\r\n\r\n")

    server = serve(flood)
    with make_client(server.url) as client, pytest.raises(ApiProtocolError, match="larger"):
        client.poll(["audio"])


def test_500_then_200_is_retried(serve) -> None:
    def flaky(req: Req) -> None:
        if req.index < 2:
            req.json(500, {"detail": "Failed to poll for jobs: database is locked"})
        else:
            req.json(200, JOB)

    server = serve(flaky)
    with capture_logs() as logs, make_client(server.url) as client:
        assert client.poll(["document"]).job_id == JOB["job_id"]
    assert len(server.seen) == 3
    retries = [e for e in logs if e["event"] == "api_retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert "database is locked" in retries[0]["error"]


def test_429_retry_after_is_honoured(serve) -> None:
    def limited(req: Req) -> None:
        if req.index == 0:
            req.json(429, {"detail": "slow down"}, {"Retry-After": "1"})
        else:
            req.json(200, NULLS)

    server = serve(limited)
    with make_client(server.url) as client:
        assert client.poll(["audio"]) is None
    assert len(server.seen) == 2
    # the backoff alone would be <= 0.05 s; the server asked for a whole second
    assert server.seen[1].at - server.seen[0].at >= 0.9


def test_a_retry_after_longer_than_the_client_sleeps_is_handed_to_the_caller(serve) -> None:
    server = serve(lambda req: req.json(503, {"detail": "maintenance"}, {"Retry-After": "3600"}))
    with make_client(server.url) as client, pytest.raises(ApiUnavailable) as caught:
        client.poll(["audio"])
    assert caught.value.retry_after == 3600.0 and caught.value.status == 503
    assert len(server.seen) == 1


def test_retries_are_bounded_then_unavailable(serve) -> None:
    server = serve(lambda req: req.send(502, b"bad gateway"))
    policy = RetryPolicy(call_attempts=3, call_waits=Waits(0.01, 0.02))
    with make_client(server.url, retry=policy) as client, pytest.raises(ApiUnavailable) as caught:
        client.poll(["audio"])
    assert len(server.seen) == 3
    assert caught.value.status == 502 and "bad gateway" in str(caught.value)


def test_connection_refused_is_unavailable_after_bounded_attempts(refused_url) -> None:
    policy = RetryPolicy(call_attempts=3, call_waits=Waits(0.01, 0.02))
    with capture_logs() as logs, make_client(refused_url, retry=policy) as client, \
            pytest.raises(ApiUnavailable, match="poll"):
        client.poll(["audio"])
    assert len([e for e in logs if e["event"] == "api_retry"]) == 2


def test_a_read_timeout_is_retried(serve) -> None:
    def stall_first(req: Req) -> None:
        if req.index == 0:
            time.sleep(2.0)
        req.json(200, NULLS)

    server = serve(stall_first)
    with make_client(server.url, read_timeout=0.3) as client:
        assert client.poll(["audio"]) is None
    assert len(server.seen) == 2


def test_stop_event_ends_a_backoff_wait_at_once(serve) -> None:
    """Shutdown must never sit out a 30 s Retry-After."""
    server = serve(lambda req: req.json(503, {"detail": "busy"}, {"Retry-After": "30"}))
    stop = threading.Event()
    outcome: list[BaseException] = []

    def call() -> None:
        with make_client(server.url, stop=stop) as client:
            try:
                client.poll(["audio"])
            except BaseException as exc:
                outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while not server.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=15)  # far less than the 30 s the server asked for
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ApiUnavailable)
    assert "stopped" in str(outcome[0])
    assert len(server.seen) == 1


@pytest.mark.parametrize(("status", "error"), [(401, ApiAuthError), (403, ApiAuthError),
                                               (404, ApiNotFound), (422, ApiProtocolError)])
def test_client_errors_are_not_retried(serve, status: int, error: type) -> None:
    server = serve(lambda req: req.json(status, {"detail": "nope"}))
    with make_client(server.url) as client, pytest.raises(error) as caught:
        client.poll(["audio"])
    assert caught.value.status == status and "nope" in str(caught.value)
    assert len(server.seen) == 1


def test_one_client_serves_many_threads(serve) -> None:
    """The agent's slots share one client."""
    lock = threading.Lock()
    count = [0]

    def handle(req: Req) -> None:
        time.sleep(0.05)
        with lock:
            count[0] += 1
            n = count[0]
        req.json(200, {**JOB, "job_id": f"job-{n}"})

    server = serve(handle)
    got: list[str] = []
    with make_client(server.url, max_concurrent_jobs=8) as client:
        threads = [threading.Thread(target=lambda: got.append(client.poll(["document"]).job_id))
                   for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(got) == sorted(f"job-{n}" for n in range(1, 17))
