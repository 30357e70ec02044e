"""MoRAG's remote-jobs contract over real HTTP, against the real server process."""

from __future__ import annotations

import re
from datetime import datetime

from tests.support.jobserver import JOBS

NULL_POLL = {"job_id": None, "source_file_url": None, "content_type": None, "task_options": None}
NAIVE_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")


def test_create_answers_pending_job_with_naive_utc_time(server, make_file) -> None:
    body = {"source_file_path": str(make_file()), "content_type": "document",
            "ingestion_task_id": "ing-1", "task_options": {"language": "de"}}
    response = server.request("POST", f"{JOBS}/", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "pending"
    assert NAIVE_ISO.match(answer["created_at"])
    assert len(answer["job_id"]) == 36
    assert server.status(answer["job_id"])["status"] == "pending"


def test_create_without_trailing_slash_is_redirected(server, make_file) -> None:
    body = {"source_file_path": str(make_file()), "content_type": "document",
            "ingestion_task_id": "ing-1"}
    response = server.request("POST", JOBS, json=body, allow_redirects=False)
    assert response.status_code == 307
    assert server.stats()["pending"] == 0


def test_create_with_missing_fields_is_422_with_detail_list(server) -> None:
    response = server.request("POST", f"{JOBS}/", json={"content_type": "document"})
    assert response.status_code == 422
    missing = {tuple(item["loc"]) for item in response.json()["detail"]}
    assert ("body", "source_file_path") in missing
    assert ("body", "ingestion_task_id") in missing


def test_poll_without_work_is_200_with_four_nulls(server) -> None:
    response = server.request("GET", f"{JOBS}/poll",
                              params={"worker_id": "w1", "content_types": "audio", "max_jobs": 1})
    assert response.status_code == 200
    assert response.json() == NULL_POLL


def test_poll_needs_worker_and_types(server) -> None:
    response = server.request("GET", f"{JOBS}/poll", params={"content_types": "audio"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "worker_id"]
    bad_max = server.request("GET", f"{JOBS}/poll",
                             params={"worker_id": "w", "content_types": "audio", "max_jobs": 0})
    assert bad_max.status_code == 422


def test_content_types_match_exactly_and_case_sensitively(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    assert server.poll("w1", "Document")["job_id"] is None
    assert server.poll("w1", "doc")["job_id"] is None
    assert server.poll("w1", "audio,document")["job_id"] == job_id


def test_claim_returns_job_fields_and_marks_it_processing(server, make_file) -> None:
    job_id = server.create(make_file("talk.mp3"), "audio", {"language": "en"})
    answer = server.poll("worker-a", "audio")
    assert answer["job_id"] == job_id
    assert answer["source_file_url"] == f"{JOBS}/{job_id}/download"
    assert answer["content_type"] == "audio"
    assert answer["task_options"] == {"language": "en"}
    status = server.status(job_id)
    assert status["status"] == "processing"
    assert status["worker_id"] == "worker-a"
    assert NAIVE_ISO.match(status["started_at"])
    assert server.poll("worker-b", "audio")["job_id"] is None


def test_jobs_are_handed_out_oldest_first(server, make_file) -> None:
    ids = server.create_many(make_file(), "document", 3)
    assert [server.poll("w", "document")["job_id"] for _ in ids] == ids


def test_max_jobs_above_one_claims_and_returns_exactly_one(server, make_file) -> None:
    ids = server.create_many(make_file(), "document", 3)
    answer = server.poll("w1", "document", max_jobs=5)
    assert answer["job_id"] == ids[0]
    stats = server.stats()
    assert (stats["processing"], stats["pending"]) == (1, 2)


def test_download_streams_file_with_disposition_and_ranges(server, make_file) -> None:
    data = bytes(range(256)) * 40
    job_id = server.create(make_file("clip.mp4", data), "video")
    server.poll("w1", "video")
    full = server.request("GET", f"{JOBS}/{job_id}/download")
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["content-disposition"] == 'attachment; filename="clip.mp4"'
    part = server.request("GET", f"{JOBS}/{job_id}/download", headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.content == data[100:]
    assert part.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"


def test_download_of_non_ascii_name_uses_rfc5987(server, make_file) -> None:
    job_id = server.create(make_file("Größe und Maß.pdf", b"%PDF-1.4"), "document")
    server.poll("w1", "document")
    response = server.request("GET", f"{JOBS}/{job_id}/download")
    assert response.headers["content-disposition"] == (
        "attachment; filename*=utf-8''Gr%C3%B6%C3%9Fe%20und%20Ma%C3%9F.pdf")


def test_download_only_while_processing(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    assert server.request("GET", f"{JOBS}/{job_id}/download").status_code == 403
    server.poll("w1", "document")
    assert server.request("GET", f"{JOBS}/{job_id}/download").status_code == 200
    assert server.put_result(job_id, worker_id="w1").status_code == 200
    assert server.request("GET", f"{JOBS}/{job_id}/download").status_code == 403


def test_download_unknown_job_or_missing_source_is_404_without_paths(server, make_file) -> None:
    assert server.request("GET", f"{JOBS}/no-such-job/download").status_code == 404
    source = make_file("gone.txt")
    job_id = server.create(source, "document")
    server.poll("w1", "document")
    source.unlink()
    response = server.request("GET", f"{JOBS}/{job_id}/download")
    assert response.status_code == 404
    assert str(source.parent) not in response.text


def test_head_on_download_is_405_like_morag(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    server.poll("w1", "document")
    assert server.request("HEAD", f"{JOBS}/{job_id}/download").status_code == 405


def test_success_result_completes_job_and_is_readable(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    server.poll("w1", "document")
    response = server.put_result(job_id, True, "# Document: source.txt\n\nbody",
                                 metadata={"content_type": "document"}, processing_time=1.5,
                                 worker_id="w1")
    assert response.status_code == 200
    assert response.json() == {"status": "completed", "ingestion_continued": True}
    status = server.status(job_id)
    assert status["status"] == "completed"
    assert datetime.fromisoformat(status["completed_at"]) >= datetime.fromisoformat(
        status["started_at"])
    result = server.result(job_id)
    assert result["content"] == "# Document: source.txt\n\nbody"
    assert result["metadata"] == {"content_type": "document"}


def test_failure_result_fails_job_with_message(server, make_file) -> None:
    job_id = server.create(make_file(), "audio")
    server.poll("w1", "audio")
    response = server.put_result(job_id, False, None, error_message="corrupt media",
                                 worker_id="w1")
    assert response.json() == {"status": "failed", "ingestion_continued": False}
    assert server.status(job_id)["error_message"] == "corrupt media"


def test_same_result_twice_is_idempotent(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    server.poll("w1", "document")
    first = server.put_result(job_id, True, "first", worker_id="w1")
    again = server.put_result(job_id, True, "second run of the same job", worker_id="w1")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert server.result(job_id)["content"] == "first"
    assert server.stats()["duplicate_results"] == 1


def test_different_outcome_after_completion_is_refused(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    server.poll("w1", "document")
    server.put_result(job_id, True, "good", worker_id="w1")
    late_failure = server.put_result(job_id, False, None, error_message="timeout",
                                     worker_id="w1")
    assert late_failure.status_code == 409
    assert server.status(job_id)["status"] == "completed"
    assert server.result(job_id)["content"] == "good"


def test_result_validation_and_unknown_job(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    server.poll("w1", "document")
    bad = server.request("PUT", f"{JOBS}/{job_id}/result", json={"content": "no success flag"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "success"]
    assert server.put_result("00000000-0000-4000-8000-000000000000").status_code == 404
    assert server.status(job_id)["status"] == "processing"


def test_status_has_morags_fields_and_404_for_unknown(server, make_file) -> None:
    job_id = server.create(make_file(), "document")
    status = server.status(job_id)
    assert set(status) == {"job_id", "status", "worker_id", "created_at", "started_at",
                           "completed_at", "error_message", "retry_count",
                           "estimated_completion"}
    assert status["retry_count"] == 0
    assert server.request("GET", f"{JOBS}/unknown/status").status_code == 404
    assert server.request("GET", f"{JOBS}/unknown/result").status_code == 404


def test_jobs_survive_a_server_restart_on_the_same_port(server, make_file) -> None:
    pending = server.create(make_file(), "document")
    running = server.create(make_file(), "audio")
    server.poll("w1", "audio")
    url = server.url
    assert server.stop() == 0
    server.start()
    assert server.url == url
    assert server.status(running)["status"] == "processing"
    assert server.poll("w2", "document")["job_id"] == pending
