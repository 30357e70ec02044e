"""Fault injection (test-only): scripted statuses, delays and cut downloads."""

from __future__ import annotations

import http.client

import pytest
import requests

from tests.support.jobserver import JOBS, running_jobserver


def test_fault_admin_is_404_unless_enabled(tmp_path) -> None:
    with running_jobserver(tmp_path / "s") as server:
        assert server.request("POST", "/_faults", json=[]).status_code == 404


def test_status_rule_applies_count_times_with_retry_after(server) -> None:
    server.set_faults([{"method": "GET", "path_regex": r"/poll$", "status": 503, "count": 2,
                        "retry_after": 1.5, "body": {"detail": "maintenance"}}])
    poll = f"{JOBS}/poll?worker_id=w&content_types=audio"
    first = server.request("GET", poll)
    assert first.status_code == 503
    assert first.headers["retry-after"] == "2"
    assert first.json() == {"detail": "maintenance"}
    assert server.request("GET", poll).status_code == 503
    assert server.request("GET", poll).status_code == 200


def test_rule_matches_method_and_path_only(server, make_file) -> None:
    server.set_faults([{"method": "PUT", "path_regex": r"/result$", "status": 500, "count": -1}])
    job_id = server.create(make_file(), "document")
    assert server.poll("w", "document")["job_id"] == job_id
    assert server.status(job_id)["status"] == "processing"
    assert server.put_result(job_id, worker_id="w").status_code == 500
    assert server.put_result(job_id, worker_id="w").status_code == 500
    server.clear_faults()
    assert server.put_result(job_id, worker_id="w").status_code == 200


def test_delay_rule_passes_the_request_through(server) -> None:
    server.set_faults([{"path_regex": r"/_stats$", "delay": 0.3}])
    assert server.stats()["pending"] == 0
    rules = server.request("GET", "/_faults").json()["rules"]
    assert rules[0]["remaining"] == 0


def test_delay_longer_than_client_timeout_times_out(server) -> None:
    server.set_faults([{"path_regex": r"/status$", "delay": 5, "status": 200}])
    with pytest.raises(requests.Timeout):
        server.request("GET", f"{JOBS}/x/status", timeout=0.5)


def _read_until_cut(server, path: str) -> tuple[int, bytes]:
    """Status and every body byte that arrived before the connection ended (http.client keeps
    the partial body of a cut response, where requests drops its last chunk)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        try:
            return response.status, response.read()
        except http.client.IncompleteRead as cut:
            return response.status, cut.partial
    finally:
        conn.close()


def test_drop_after_bytes_cuts_the_download_and_range_resumes(server, make_file) -> None:
    data = bytes(range(256)) * 1024
    job_id = server.create(make_file("big.bin", data), "video")
    server.poll("w", "video")
    server.set_faults([{"method": "GET", "path_regex": r"/download$",
                        "drop_after_bytes": 100_000}])
    status, received = _read_until_cut(server, f"{JOBS}/{job_id}/download")
    assert status == 200
    assert received == data[:100_000]
    rest = server.request("GET", f"{JOBS}/{job_id}/download",
                          headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert received + rest.content == data


def test_cut_download_is_an_error_for_requests_clients(server, make_file) -> None:
    job_id = server.create(make_file("big.bin", b"x" * 200_000), "video")
    server.poll("w", "video")
    server.set_faults([{"path_regex": r"/download$", "drop_after_bytes": 50_000}])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        server.request("GET", f"{JOBS}/{job_id}/download").content  # noqa: B018


def test_invalid_rule_is_422(server) -> None:
    response = server.request("POST", "/_faults", json=[{"status": 500}])
    assert response.status_code == 422
    bad_regex = server.request("POST", "/_faults", json=[{"path_regex": "(", "status": 500}])
    assert bad_regex.status_code == 422
    useless = server.request("POST", "/_faults", json=[{"path_regex": "/poll"}])
    assert useless.status_code == 422
