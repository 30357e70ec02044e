"""The parts behind cancel and drain, on real files and a real journal: what the agent answers a
cancel in each phase of a job, a drain that outlives a restart and ends by itself, and the
operator's end times as the controller reads them."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from morag_fleet.agent.cancel import FINISHED, NOT_HERE, CancelDesk
from morag_fleet.agent.drain import FILE_NAME, DrainState
from morag_fleet.agent.journal import Journal
from morag_fleet.agent.runner import CANCELLING, DEFAULT_CANCEL_GRACE, TOO_LATE, ActiveJob
from morag_fleet.controller.actions import ActionError, clean_note, parse_until
from morag_fleet.jobs.models import Job, JobResult


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    journal = Journal(tmp_path / "state")
    yield journal
    journal.close()


def claim(journal: Journal, job_id: str) -> Job:
    job = Job(job_id=job_id, source_file_url=f"http://127.0.0.1/{job_id}",
              content_type="document")
    assert journal.record_claim(job_id, "document", {"job_id": job_id})
    return job


def test_a_running_job_is_cancelled_until_its_result_is_spooled(journal: Journal) -> None:
    active_jobs: dict[str, ActiveJob] = {}
    desk = CancelDesk(active_jobs, journal)
    active = ActiveJob(claim(journal, "j1"), slot=0)
    desk.attach(active)
    active.phase = "converting"

    answer = desk.request("j1", "  wrong file  ", 2)

    assert (answer.outcome, answer.job_id) == (CANCELLING, "j1")
    assert "was converting" in answer.detail
    assert active.cancelled and active.cancel_grace() == 2.0
    assert active.close_cancel_window() == (True, "wrong file")
    assert desk.request("j1", None, None).outcome == TOO_LATE  # the window is closed now


def test_a_cancel_after_the_window_closed_leaves_the_job_alone(journal: Journal) -> None:
    active_jobs: dict[str, ActiveJob] = {}
    desk = CancelDesk(active_jobs, journal)
    active = ActiveJob(claim(journal, "j2"), slot=0)
    desk.attach(active)
    assert active.close_cancel_window() == (False, None)
    answer = desk.request("j2", "late", 1)
    assert answer.outcome == TOO_LATE and "being delivered" in answer.detail
    assert not active.cancelled


def test_a_claimed_job_waiting_for_a_slot_is_cancelled_when_it_gets_one(
        journal: Journal) -> None:
    desk = CancelDesk({}, journal)
    job = claim(journal, "queued")
    answer = desk.request("queued", "not needed", -5)  # a negative grace: the default
    assert answer.outcome == CANCELLING and "not started yet" in answer.detail
    active = ActiveJob(job, slot=1)
    desk.attach(active)
    assert active.cancelled and active.cancel_grace() == DEFAULT_CANCEL_GRACE


def test_spooled_delivered_and_unknown_jobs_get_a_clear_answer(journal: Journal) -> None:
    desk = CancelDesk({}, journal)
    claim(journal, "spooled")
    journal.spool_result("spooled", JobResult(True, content="x").to_json())
    claim(journal, "done")
    journal.spool_result("done", JobResult(True, content="x").to_json())
    journal.mark_delivered("done")
    waiting = desk.request("spooled", None, None)
    assert waiting.outcome == TOO_LATE and "outbox" in waiting.detail
    assert desk.request("done", None, None).outcome == FINISHED
    assert desk.request("never", None, None).outcome == NOT_HERE
    assert desk.request(None, None, None).outcome == NOT_HERE


def test_a_drain_is_kept_across_restarts_and_ends_by_itself(tmp_path: Path) -> None:
    flag = threading.Event()
    drain = DrainState(tmp_path, flag)
    until = time.time() + 60
    drain.drain("driver update\x1b[2J", until)
    assert flag.is_set()
    assert drain.view() == {"drain_note": "driver update [2J", "drain_until": until}
    # a restarted agent is still drained, with the same note and end
    again_flag = threading.Event()
    again = DrainState(tmp_path, again_flag)
    assert again_flag.is_set() and again.note == "driver update [2J" and again.until == until
    assert not again.expire(now=until - 1)
    assert again.expire(now=until + 1)
    assert not again_flag.is_set() and again.view() == {}
    assert not (tmp_path / FILE_NAME).exists()
    assert not DrainState(tmp_path, threading.Event()).note


def test_a_drain_without_an_end_waits_for_resume(tmp_path: Path) -> None:
    flag = threading.Event()
    drain = DrainState(tmp_path, flag)
    drain.drain(None, "not a time")
    assert drain.until is None and not drain.expire(now=time.time() + 10**9)
    drain.resume()
    assert not flag.is_set()


def test_a_damaged_drain_file_keeps_the_agent_drained(tmp_path: Path) -> None:
    """Unreadable is taken as drained: claiming on a host the operator took out is worse."""
    (tmp_path / FILE_NAME).write_text("{not json")
    flag = threading.Event()
    drain = DrainState(tmp_path, flag)
    assert flag.is_set() and drain.note is None and drain.until is None
    (tmp_path / FILE_NAME).write_text(json.dumps(["a list"]))
    assert DrainState(tmp_path, threading.Event()).note is None


NOW = datetime(2026, 3, 2, 10, 30).timestamp()


@pytest.mark.parametrize(("text", "expected"), [
    ("2h", NOW + 7200), ("90m", NOW + 5400), ("45s", NOW + 45), ("1d", NOW + 86400),
    ("14:00", datetime(2026, 3, 2, 14, 0).timestamp()),
    ("09:15", datetime(2026, 3, 3, 9, 15).timestamp()),  # passed today: tomorrow
    (NOW + 100, NOW + 100), (None, None), ("", None),
])
def test_drain_end_times(text: object, expected: float | None) -> None:
    assert parse_until(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["25:00", "12:75", "soon", "-2h", "0m", NOW - 1, True, [1]])
def test_drain_end_times_that_are_refused(text: object) -> None:
    with pytest.raises(ActionError):
        parse_until(text, now=NOW)


def test_notes_are_cleaned_and_bounded() -> None:
    assert clean_note("  back at 14:00 ") == "back at 14:00"
    assert clean_note("") is None and clean_note(None) is None
    with pytest.raises(ActionError):
        clean_note("x" * 501)
    with pytest.raises(ActionError):
        clean_note(42)
    assert "\x1b" not in (clean_note("evil\x1b[2Jnote") or "")
