"""Long polling: a held poll is woken by a new job of its type (no sleeping loop)."""

from __future__ import annotations

import threading
from typing import Any

from tests.support.jobserver import JOBS


def _poll_in_background(server, worker: str, types: str, wait: float) -> tuple[threading.Thread,
                                                                              dict[str, Any]]:
    answer: dict[str, Any] = {}

    def run() -> None:
        response = server.request("GET", f"{JOBS}/poll", timeout=120, params={
            "worker_id": worker, "content_types": types, "max_jobs": 1, "wait": wait})
        answer["status_code"] = response.status_code
        answer["body"] = response.json()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer


def test_waiting_poll_returns_the_job_created_while_it_waits(server, make_file) -> None:
    thread, answer = _poll_in_background(server, "w1", "audio", wait=60)
    server.wait_for(lambda: server.stats()["long_polls_waiting"] == 1, 30, "poll to wait")
    job_id = server.create(make_file("a.mp3"), "audio")
    thread.join(90)
    assert answer["status_code"] == 200
    assert answer["body"]["job_id"] == job_id
    assert server.status(job_id)["worker_id"] == "w1"


def test_job_of_another_type_does_not_end_the_wait(server, make_file) -> None:
    thread, answer = _poll_in_background(server, "w1", "video", wait=60)
    server.wait_for(lambda: server.stats()["long_polls_waiting"] == 1, 30, "poll to wait")
    other = server.create(make_file(), "document")
    server.wait_for(lambda: server.stats()["long_polls_waiting"] == 1, 30, "poll to wait again")
    assert thread.is_alive()
    wanted = server.create(make_file("v.mp4"), "video")
    thread.join(90)
    assert answer["body"]["job_id"] == wanted
    assert server.status(other)["status"] == "pending"


def test_wait_that_runs_out_answers_nulls(server) -> None:
    answer = server.poll("w1", "image", wait=0.5)
    assert answer == {"job_id": None, "source_file_url": None, "content_type": None,
                      "task_options": None}


def test_sigterm_releases_waiting_polls_and_exits_cleanly(server) -> None:
    thread, answer = _poll_in_background(server, "w1", "audio", wait=60)
    server.wait_for(lambda: server.stats()["long_polls_waiting"] == 1, 30, "poll to wait")
    assert server.stop() == 0
    thread.join(30)
    assert answer["status_code"] == 200
    assert answer["body"]["job_id"] is None
