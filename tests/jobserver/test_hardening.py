"""The reference job server against hostile or careless clients: source paths outside its roots,
oversized uploads, uploads left behind, numbers JSON can write but no answer can carry, and a
token that must not be on its command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.jobserver import JOBS, JobServer, running_jobserver

TOKEN = "hardening-token-7c1e"


def create(server: JobServer, path: str | Path) -> requests.Response:
    body = {"source_file_path": str(path), "content_type": "document",
            "ingestion_task_id": "hardening", "task_options": {}}
    return server.request("POST", f"{JOBS}/", json=body)


def upload(server: JobServer, data: bytes) -> requests.Response:
    return server.request("POST", f"{JOBS}/upload", files={"file": ("up.txt", data)},
                          data={"content_type": "document"})


def files_left(server: JobServer) -> list[str]:
    folder = server.data_dir / "files"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_source_paths_outside_the_roots_are_refused(tmp_path: Path,
                                                    make_file: Callable[..., Path]) -> None:
    inside = make_file("inside.txt")
    link = inside.parent / "link-to-passwd"
    link.symlink_to("/etc/passwd")
    with running_jobserver(tmp_path / "default", source_roots=()) as server:
        for path in ("/etc/shadow", server.data_dir / "jobs.sqlite3", inside, "relative.txt"):
            refused = create(server, path)
            assert refused.status_code == 422, (path, refused.text)
        assert "source roots" in create(server, inside).json()["detail"]
    with running_jobserver(tmp_path / "rooted", source_roots=(inside.parent, tmp_path)) as server:
        assert create(server, inside).status_code == 200
        assert create(server, link).status_code == 422  # the link leads outside the roots
        own_data = create(server, server.data_dir / "jobs.sqlite3")
        assert own_data.status_code == 422 and "own data" in own_data.json()["detail"]
        assert server.stats()["pending"] == 1


def test_uploads_over_the_cap_get_413_and_leave_nothing(tmp_path: Path) -> None:
    args = ("--max-upload-bytes", "1000")
    with running_jobserver(tmp_path / "s", extra_args=args) as server:
        assert upload(server, b"a" * 200_000).status_code == 413  # declared size too big
        assert upload(server, b"b" * 5_000).status_code == 413  # counted while copied
        assert files_left(server) == []
        assert upload(server, b"c" * 1_000).status_code == 200
        assert len(files_left(server)) == 1
        assert server.stats()["pending"] == 1


def test_uploads_are_removed_once_their_jobs_end(tmp_path: Path) -> None:
    with running_jobserver(tmp_path / "s") as server:
        done, failed, waiting = (upload(server, f"job {n}\n".encode()).json()["job_id"]
                                 for n in range(3))
        assert len(files_left(server)) == 3
        for job_id, success in ((done, True), (failed, False)):
            claimed = server.poll("w1", "document")
            assert claimed["job_id"] == job_id
            answer = server.put_result(job_id, success=success, worker_id="w1",
                                       error_message=None if success else "broken")
            assert answer.status_code == 200, answer.text
        server.wait_for(lambda: len(files_left(server)) == 1, 30, "ended jobs' uploads removed")
        claimed = server.poll("w1", "document")
        assert claimed["job_id"] == waiting
        download = server.request("GET", f"{JOBS}/{waiting}/download")
        assert download.status_code == 200 and download.content == b"job 2\n"


def test_an_infinite_processing_time_is_a_422_not_a_500(server: JobServer,
                                                        make_file: Callable[..., Path]) -> None:
    job_id = server.create(make_file(), "document")
    server.poll("w1", "document")
    for raw in ('{"success": true, "content": "x", "processing_time": 1e999}',
                '{"success": true, "content": "x", "metadata": {"pages": -1e999}}'):
        answer = server.request("PUT", f"{JOBS}/{job_id}/result", data=raw,
                                params={"worker_id": "w1"},
                                headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
    assert server.status(job_id)["status"] == "processing"


def test_the_token_comes_from_a_file_not_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "jobserver.token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("MORAG_JOBSERVER_TOKEN_FILE", str(token_file))
    with running_jobserver(tmp_path / "env") as server:
        assert server.proc is not None
        cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        assert TOKEN.encode() not in cmdline
        assert server.request("GET", f"{JOBS}/_stats").status_code == 401
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        assert server.request("GET", f"{JOBS}/_stats", headers=authorized).status_code == 200
    monkeypatch.delenv("MORAG_JOBSERVER_TOKEN_FILE")
    with running_jobserver(tmp_path / "flag", token=TOKEN) as server:  # the harness's file
        assert TOKEN.encode() not in Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        assert server.request("GET", f"{JOBS}/_stats").status_code == 200
    flagged = JobServer(tmp_path / "old-style", extra_args=("--token", TOKEN))
    flagged.start()
    try:
        assert "warning: --token shows the token in the process list" in flagged.log_tail()
    finally:
        flagged.stop()
