"""The client against real server processes: the reference job server (leases, auth, long poll)
and the MoRAG double (MoRAG's own behaviour, warts included). One full job each way."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from morag_fleet.jobs.errors import ApiAuthError
from morag_fleet.jobs.models import JobResult
from tests.support.jobserver import running_jobserver
from tests.support.morag_double import running_morag_double

from .loopback import TOKEN, make_client

pytestmark = pytest.mark.slow

SOURCE_NAME = "Vortrag über RAG (final).txt"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "sources" / SOURCE_NAME
    path.parent.mkdir()
    path.write_bytes(b"hello fleet\n" * 50_000)
    return path


def run_one_job(url: str, source: Path, work: Path, **overrides) -> dict:
    with make_client(url, **overrides) as client:
        report = client.test_connection()
        assert (report.ok, report.kind) == (True, "ok"), report.message
        job = client.poll(["document"])
        assert job is not None and job.content_type == "document"
        job_dir = work / job.job_id
        job_dir.mkdir(parents=True)
        got = client.download(job, job_dir)
        assert got.path == job_dir / SOURCE_NAME
        assert got.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert client.job_status(job.job_id)["status"] == "processing"
        client.submit_result(job.job_id, JobResult(success=True, content="# Document: x\n",
                                                   metadata={"content_type": "document"}))
        assert client.job_status(job.job_id)["status"] == "completed"
        assert client.poll(["document"]) is None
        return {"job": job, "client_lease": client.renew_lease(job.job_id)}


def test_a_job_through_the_reference_server(tmp_path: Path, source: Path) -> None:
    with running_jobserver(tmp_path / "server", token=TOKEN, lease_seconds=30) as server:
        server.create(source, "document")
        outcome = run_one_job(server.url, source, tmp_path / "work")
        assert outcome["job"].lease_seconds == 30.0
        with make_client(server.url, api_key="wrong-key") as client:
            assert client.test_connection().kind == "auth"
            with pytest.raises(ApiAuthError):
                client.poll(["document"])


def test_long_poll_returns_when_a_job_arrives(tmp_path: Path, source: Path) -> None:
    with running_jobserver(tmp_path / "server", token=TOKEN) as server, \
            make_client(server.url) as client:
        assert client.poll(["document"], wait=0.2) is None
        started = time.monotonic()
        threading.Timer(0.5, lambda: server.create(source, "document")).start()
        job = client.poll(["document"], wait=20)
        assert job is not None
        assert time.monotonic() - started < 19  # answered by the job, not by the wait running out


def test_a_job_through_the_morag_double(tmp_path: Path, source: Path) -> None:
    with running_morag_double(tmp_path / "morag") as double:
        double.create_job(source, "document")
        outcome = run_one_job(double.url, source, tmp_path / "work")
        assert outcome["job"].lease_seconds is None
        assert outcome["client_lease"] is False  # MoRAG has no lease endpoint
