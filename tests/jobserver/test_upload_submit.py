"""Upload of source files and the `morag-fleet submit` command, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.jobserver.conftest import TOKEN
from tests.support.jobserver import JOBS, main_module, running_jobserver
from tests.support.process import REPO_ROOT


def _submit(server, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("MORAG_API_KEY", None)
    argv = [sys.executable, "-m", main_module(), "submit", *args, "--api-url", server.url]
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_upload_keeps_name_for_download_but_stores_under_generated_name(server, make_file) -> None:
    job_id = server.upload(make_file("Quartalsbericht Q3 (final).docx", b"PK\x03\x04"),
                           "document", {"language": "de"})
    answer = server.poll("w1", "document")
    assert answer["job_id"] == job_id
    assert answer["task_options"] == {"language": "de"}
    download = server.request("GET", f"{JOBS}/{job_id}/download")
    assert download.content == b"PK\x03\x04"
    assert download.headers["content-disposition"] == (
        "attachment; filename*=utf-8''Quartalsbericht%20Q3%20%28final%29.docx")
    stored = [p.name for p in (server.data_dir / "files").iterdir()]
    assert len(stored) == 1
    assert stored[0].endswith(".docx")
    assert "Quartalsbericht" not in stored[0]


def test_hostile_upload_name_cannot_escape_the_data_dir(server, tmp_path) -> None:
    data = b"payload"
    response = server.request(
        "POST", f"{JOBS}/upload", data={"content_type": "document"},
        files={"file": ("../../../etc/evil\r\nX-Injected: 1.txt", data)})
    assert response.status_code == 200
    job_id = response.json()["job_id"]
    server.poll("w1", "document")
    download = server.request("GET", f"{JOBS}/{job_id}/download")
    assert download.content == data
    assert "X-Injected" not in download.headers
    assert "/" not in download.headers["content-disposition"].split("filename", 1)[1]
    assert [p.parent for p in (server.data_dir / "files").iterdir()] == [
        server.data_dir / "files"]


def test_upload_with_bad_task_options_is_422_and_creates_nothing(server, make_file) -> None:
    for options in ("{not json", "[1, 2]"):
        with make_file().open("rb") as stream:
            response = server.request("POST", f"{JOBS}/upload", files={"file": ("a.txt", stream)},
                                      data={"content_type": "document", "task_options": options})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "task_options"]
    missing_type = server.request("POST", f"{JOBS}/upload", files={"file": ("a.txt", b"x")})
    assert missing_type.status_code == 422
    assert server.stats()["pending"] == 0


def test_submit_wait_prints_job_id_and_markdown(tmp_path, make_file) -> None:
    with running_jobserver(tmp_path / "s", token=TOKEN) as server:
        proc = _submit(server, str(make_file("memo.txt", b"memo body")), "--type", "document",
                       "--options", json.dumps({"language": "en"}), "--wait", "--timeout", "120",
                       "--token", TOKEN)
        job = server.poll("worker-x", "document", wait=60)
        assert job["task_options"] == {"language": "en"}
        source = server.request("GET", f"{JOBS}/{job['job_id']}/download").content
        markdown = f"# Document: memo.txt\n\n{source.decode()}\n"
        answer = server.put_result(job["job_id"], True, markdown, worker_id="worker-x")
        assert answer.status_code == 200
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == f"{job['job_id']}\n{markdown}"


def test_submit_wait_reports_a_failed_job_with_exit_1(server, make_file) -> None:
    proc = _submit(server, str(make_file("bad.mp3")), "--type", "audio", "--wait")
    job = server.poll("worker-x", "audio", wait=60)
    server.put_result(job["job_id"], False, None, error_message="no audio stream found",
                      worker_id="worker-x")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert out.strip() == job["job_id"]
    assert "no audio stream found" in err


def test_submit_without_wait_only_queues(server, make_file) -> None:
    proc = _submit(server, str(make_file()), "--type", "web")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert server.status(out.strip())["status"] == "pending"


def test_submit_rejects_bad_input_clearly(server, make_file, tmp_path) -> None:
    missing = _submit(server, str(tmp_path / "nope.txt"), "--type", "document")
    _, err = missing.communicate(timeout=120)
    assert missing.returncode == 2
    assert "no such file" in err
    bad_options = _submit(server, str(make_file()), "--type", "document", "--options", "[1")
    _, err = bad_options.communicate(timeout=120)
    assert bad_options.returncode == 2
    assert "--options" in err
    assert server.stats()["pending"] == 0


def test_submit_to_unreachable_server_fails_with_message(server, make_file) -> None:
    server.stop()
    proc = _submit(server, str(make_file()), "--type", "document")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "cannot reach" in err
