"""Only the worker holding a job is heard, a worker can ask which jobs it holds, and a poller
that hung up is handed nothing."""

from __future__ import annotations

import socket
import time

from tests.support.jobserver import JOBS, running_jobserver


def test_only_the_holder_reports_a_job(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    assert server.poll("owner", "document")["job_id"] == job_id
    assert server.put_result(job_id, True, "anonymous").status_code == 409
    refused = server.put_result(job_id, True, "intruder", worker_id="intruder")
    assert refused.status_code == 409
    assert "only the worker holding the job" in refused.json()["detail"]
    assert server.result(job_id)["content"] is None
    assert server.put_result(job_id, True, "owner's", worker_id="owner").status_code == 200
    assert server.put_result(job_id, True, "owner's", worker_id="owner").status_code == 200
    assert server.put_result(job_id, True, "late", worker_id="intruder").status_code == 409
    assert server.result(job_id)["content"] == "owner's"
    assert server.stats()["refused_results"] == 3


def test_anonymous_results_can_be_allowed_for_plain_clients(tmp_path, make_file) -> None:
    with running_jobserver(tmp_path / "s", extra_args=("--anonymous-results",)) as server:
        job_id = server.create(make_file(), "document")
        server.poll("plain-client", "document")
        assert server.put_result(job_id, True, "no worker named").status_code == 200
        assert server.result(job_id)["content"] == "no worker named"


def test_held_lists_the_jobs_processing_by_a_worker(server, make_file) -> None:
    ids = [server.create(make_file(f"s{i}.txt"), "document") for i in range(3)]
    for worker in ("w1", "w2", "w1"):
        server.poll(worker, "document")
    held = server.request("GET", f"{JOBS}/held", params={"worker_id": "w1"}).json()
    assert [job["job_id"] for job in held["jobs"]] == [ids[0], ids[2]]
    assert held["jobs"][0]["source_file_url"] == f"{JOBS}/{ids[0]}/download"
    assert held["jobs"][0]["content_type"] == "document"
    server.put_result(ids[0], True, "done", worker_id="w1")
    held = server.request("GET", f"{JOBS}/held", params={"worker_id": "w1"}).json()
    assert [job["job_id"] for job in held["jobs"]] == [ids[2]]


def test_a_poller_that_hung_up_is_handed_nothing(server, make_file) -> None:
    """The request is held up in front of the endpoint; the client is gone by the time the
    endpoint would claim, so the job stays in the queue instead of going to nobody."""
    job_id = server.create(make_file(), "document")
    server.set_faults([{"method": "GET", "path_regex": r"/poll$", "delay": 1.5, "count": 1}])
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"GET {JOBS}/poll?worker_id=gone&content_types=document&max_jobs=1 "
                     f"HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_RDWR)
    time.sleep(2.5)
    assert server.status(job_id)["status"] == "pending"
    assert server.poll("w2", "document")["job_id"] == job_id
