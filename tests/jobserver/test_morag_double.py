"""The MoRAG double behaves as MoRAG's own server does (docs/morag-compatibility.md), so agent
tests against it mean something."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.support.morag_double import JOBS, running_morag_double
from tests.support.process import wait_for

NULLS = {"job_id": None, "source_file_url": None, "content_type": None, "task_options": None}


@pytest.fixture
def double(tmp_path):
    with running_morag_double(tmp_path / "double") as running:
        yield running


def _poll(double, **params):
    query = {"worker_id": "w1", "content_types": "document", "max_jobs": 1, **params}
    return double.request("GET", f"{JOBS}/poll", params=query, timeout=60)


def test_idle_poll_is_200_with_nulls_and_ignores_tokens(double) -> None:
    plain = _poll(double)
    assert (plain.status_code, plain.json()) == (200, NULLS)
    with_token = requests.get(double.url + f"{JOBS}/poll", timeout=30,
                         params={"worker_id": "w", "content_types": "audio"},
                         headers={"Authorization": "Bearer anything"})
    assert (with_token.status_code, with_token.json()) == (200, NULLS)


def test_claim_download_result_status(double, make_file) -> None:
    job_id = double.create_job(make_file("notes.txt", b"abc"), "document", {"x": 1})
    answer = _poll(double).json()
    assert answer == {"job_id": job_id, "source_file_url": f"{JOBS}/{job_id}/download",
                      "content_type": "document", "task_options": {"x": 1}}
    assert "lease_seconds" not in answer
    download = double.request("GET", f"{JOBS}/{job_id}/download")
    assert download.content == b"abc"
    assert download.headers["content-disposition"] == 'attachment; filename="notes.txt"'
    result = double.request("PUT", f"{JOBS}/{job_id}/result", json={"success": True,
                                                                   "content": "# md"})
    assert result.json() == {"status": "completed", "ingestion_continued": True}
    assert double.status(job_id)["worker_id"] == "w1"
    assert double.job_record(job_id)["content"] == "# md"


def test_wait_is_ignored_and_answers_at_once(double, make_file) -> None:
    answer: dict = {}

    def poll_with_wait() -> None:
        answer["body"] = _poll(double, wait=600).json()

    thread = threading.Thread(target=poll_with_wait)
    thread.start()
    thread.join(60)  # a held long poll would still be running; MoRAG answers at once
    assert not thread.is_alive()
    assert answer["body"] == NULLS


def test_max_jobs_above_one_orphans_the_extra_claims(double, make_file) -> None:
    ids = [double.create_job(make_file(f"{n}.txt"), "document") for n in range(3)]
    answer = _poll(double, max_jobs=3).json()
    assert answer["job_id"] == ids[0]
    assert [double.status(i)["status"] for i in ids] == ["processing"] * 3
    assert _poll(double).json() == NULLS


def test_create_needs_trailing_slash_and_validates(double, make_file) -> None:
    body = {"source_file_path": str(make_file()), "content_type": "document",
            "ingestion_task_id": "t"}
    redirect = double.request("POST", JOBS, json=body, allow_redirects=False)
    assert redirect.status_code == 307
    invalid = double.request("POST", f"{JOBS}/", json={"content_type": "document"})
    assert invalid.status_code == 422
    assert isinstance(invalid.json()["detail"], list)


def test_download_rules_head_and_missing_source(double, make_file) -> None:
    source = make_file("gone.txt")
    job_id = double.create_job(source, "document")
    assert double.request("GET", f"{JOBS}/{job_id}/download").status_code == 403
    _poll(double)
    assert double.request("HEAD", f"{JOBS}/{job_id}/download").status_code == 405
    source.unlink()
    missing = double.request("GET", f"{JOBS}/{job_id}/download")
    assert missing.status_code == 404
    assert str(source) in missing.json()["detail"]  # MoRAG leaks the server path
    assert double.request("GET", f"{JOBS}/nope/download").status_code == 404


def test_later_failure_overwrites_completed_job(double, make_file) -> None:
    job_id = double.create_job(make_file(), "document")
    _poll(double)
    double.request("PUT", f"{JOBS}/{job_id}/result", json={"success": True, "content": "ok"})
    again = double.request("PUT", f"{JOBS}/{job_id}/result",
                           json={"success": False, "error_message": "late failure"})
    assert again.json()["status"] == "failed"
    assert double.status(job_id)["status"] == "failed"


def test_slow_result_put_times_out_client_but_job_is_completed(tmp_path, make_file) -> None:
    with running_morag_double(tmp_path / "slow", result_delay=30) as double:
        job_id = double.create_job(make_file(), "document")
        _poll(double)
        with pytest.raises(requests.Timeout):
            double.request("PUT", f"{JOBS}/{job_id}/result", json={"success": True,
                                                                   "content": "x"}, timeout=3)
        wait_for(lambda: double.status(job_id)["status"] == "completed", 30, "completion")


def test_expired_job_is_never_handed_out_and_no_requeue(tmp_path, make_file) -> None:
    with running_morag_double(tmp_path / "exp", expiry_seconds=1) as double:
        job_id = double.create_job(make_file(), "document")
        time.sleep(1.5)
        assert _poll(double).json() == NULLS
        assert double.status(job_id)["status"] == "pending"


def test_unknown_job_status_and_result_are_404(double) -> None:
    assert double.request("GET", f"{JOBS}/x/status").status_code == 404
    assert double.request("PUT", f"{JOBS}/x/result", json={"success": True}).status_code == 404
