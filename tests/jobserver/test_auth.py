"""Bearer-token auth on every endpoint when the server has a token."""

from __future__ import annotations

import pytest
import requests

from tests.jobserver.conftest import TOKEN
from tests.support.jobserver import JOBS, running_jobserver

ENDPOINTS = [
    ("POST", f"{JOBS}/"),
    ("POST", f"{JOBS}/upload"),
    ("GET", f"{JOBS}/poll?worker_id=w&content_types=audio"),
    ("GET", f"{JOBS}/x/download"),
    ("PUT", f"{JOBS}/x/result"),
    ("GET", f"{JOBS}/x/status"),
    ("GET", f"{JOBS}/x/result"),
    ("POST", f"{JOBS}/x/lease?worker_id=w"),
    ("GET", f"{JOBS}/_stats"),
    ("POST", "/_faults"),
    ("GET", "/docs"),
]


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    with running_jobserver(tmp_path_factory.mktemp("auth"), token=TOKEN, faults=True) as server:
        yield server


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_request_without_token_is_401(secured, method: str, path: str) -> None:
    response = requests.request(method, secured.url + path, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS[:4])
def test_wrong_token_is_401(secured, method: str, path: str) -> None:
    response = requests.request(method, secured.url + path, timeout=30,
                                headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_right_token_works_end_to_end(secured, make_file) -> None:
    job_id = secured.upload(make_file(), "document")
    assert secured.poll("w1", "document")["job_id"] == job_id
    download = secured.request("GET", f"{JOBS}/{job_id}/download")
    assert download.content == b"hello, job server\n"
    assert secured.put_result(job_id, True, "ok", worker_id="w1").status_code == 200
    assert secured.status(job_id)["status"] == "completed"
