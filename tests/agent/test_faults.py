"""Faults with real processes and signals: outages, error answers, crashes, drains, aborts.

The invariant checked everywhere: every job the agent claimed ends completed or failed on the
server with a reason, exactly once, and the agent process survives what it should survive.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from tests.support.agent_proc import wait_until


def final(server, job_id: str) -> dict:
    return wait_until(lambda: (s := server.status(job_id))["status"] in ("completed", "failed")
                      and s, 120, f"job {job_id} final")


def test_api_down_during_poll_then_back(jobserver, make_agent, make_doc) -> None:
    jobserver.stop()
    agent = make_agent(jobserver.url)
    agent.wait_for_event("poll_failed", timeout=60)
    jobserver.start()
    job_id = jobserver.upload(make_doc("late.txt", "arrived late"), "document")
    assert final(jobserver, job_id)["status"] == "completed"
    assert agent.alive


def test_api_down_during_submit_result_arrives_once(jobserver, make_agent, make_doc) -> None:
    job_id = jobserver.upload(make_doc("slow.txt", "sleep 4\nbody"), "document")
    agent = make_agent(jobserver.url)
    agent.wait_for_event("job_downloaded", timeout=60, job_id=job_id)
    jobserver.stop()
    agent.wait_for_event("result_spooled", timeout=60, job_id=job_id)
    jobserver.start()
    assert final(jobserver, job_id)["status"] == "completed"
    assert "sleep 4" in jobserver.result(job_id)["content"]
    wait_until(lambda: agent.find("result_submitted", job_id=job_id), 30, "submitted")
    assert jobserver.stats()["duplicate_results"] == 0


def test_download_outage_is_retried(jobserver, make_agent, make_doc) -> None:
    job_id = jobserver.upload(make_doc("d.txt", "downloaded eventually"), "document")
    # more failures than one call's own retries: the runner keeps the job and tries again
    jobserver.set_faults([{"method": "GET", "path_regex": r"/download$", "status": 503,
                           "count": 7}])
    agent = make_agent(jobserver.url)
    assert final(jobserver, job_id)["status"] == "completed"
    assert agent.find("api_retry")
    assert agent.find("download_retry", job_id=job_id)


def test_500_and_429_with_retry_after_on_poll(jobserver, make_agent, make_doc) -> None:
    jobserver.set_faults([
        {"method": "GET", "path_regex": r"/poll$", "status": 500, "count": 2},
        {"method": "GET", "path_regex": r"/poll$", "status": 429, "count": 1, "retry_after": 2},
    ])
    job_id = jobserver.upload(make_doc("r.txt", "after retries"), "document")
    agent = make_agent(jobserver.url)
    assert final(jobserver, job_id)["status"] == "completed"
    assert agent.alive


def test_sigkill_mid_conversion_then_restart_reports_job(jobserver, make_agent,
                                                         make_doc) -> None:
    job_id = jobserver.upload(make_doc("k.txt", "sleep 30\nkilled midway"), "document")
    agent = make_agent(jobserver.url)
    agent.wait_for_event("job_downloaded", timeout=60, job_id=job_id)
    time.sleep(1.0)
    agent.kill()
    assert jobserver.status(job_id)["status"] == "processing"
    # the same host comes back (same state dir); the job is still ours and is re-run
    (agent.dir / "k.txt").write_text("")  # unrelated file in the agent's dir must not matter
    agent.start()
    agent.wait_for_event("job_resumed", timeout=60, job_id=job_id)
    assert final(jobserver, job_id)["status"] == "completed"


def test_job_that_keeps_killing_the_agent_is_failed(jobserver, make_agent, make_doc) -> None:
    job_id = jobserver.upload(make_doc("p.txt", "sleep 60\npoison"), "document")
    agent = make_agent(jobserver.url, max_job_crashes=2)
    for run in range(2):
        wait_until(lambda n=run: len(agent.find("job_downloaded", job_id=job_id)) > n, 60,
                   f"conversion {run + 1} started")
        time.sleep(0.5)
        agent.kill()
        agent.start()
    status = final(jobserver, job_id)
    assert status["status"] == "failed"
    assert "stopped 2 times" in status["error_message"]


def test_segfault_fails_job_recycles_slot_agent_lives(jobserver, make_agent, make_doc) -> None:
    bad = jobserver.upload(make_doc("crash.txt", "segfault"), "document")
    agent = make_agent(jobserver.url, slots=1)
    status = final(jobserver, bad)
    assert status["status"] == "failed"
    assert "crashed (signal SIGSEGV)" in status["error_message"]
    good = jobserver.upload(make_doc("fine.txt", "still working"), "document")
    assert final(jobserver, good)["status"] == "completed"
    assert agent.find("slot_recycled", reason="crash")
    assert agent.alive


def test_hang_past_timeout_kills_process_group(jobserver, make_agent, make_doc,
                                               tmp_path) -> None:
    pidfile = tmp_path / "hang.pid"
    job_id = jobserver.upload(make_doc("hang.txt", "hang"), "document")
    agent = make_agent(jobserver.url, slots=1, job_timeouts={"document": 3}, start=False)
    agent.env_extra["MORAG_TEST_PIDFILE"] = str(pidfile)
    agent.start()
    status = final(jobserver, job_id)
    assert status["status"] == "failed"
    assert "timed out after 3 s" in status["error_message"]
    tool_pid = int(pidfile.read_text())
    wait_until(lambda: not _pid_alive(tool_pid), 10, "the converter's child tool killed")
    assert agent.alive


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as handle:  # a zombie is dead for our purposes
            return handle.read().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):  # also when reaped between the two calls
        return False


@pytest.mark.parametrize("action", ["eat-memory", "eat-memory-in-child"])
def test_memory_hog_is_stopped_at_the_ceiling(jobserver, make_agent, make_doc, action) -> None:
    """Also when the hog is a tool the converter started (ffmpeg, tesseract): the slot's whole
    process tree counts, and the whole group is killed."""
    job_id = jobserver.upload(make_doc("hog.txt", action), "document")
    agent = make_agent(jobserver.url, slots=1, slot_memory_limit_mb=300)
    status = final(jobserver, job_id)
    assert status["status"] == "failed"
    assert "exceeded the memory limit" in status["error_message"]
    assert agent.alive


def test_sigterm_drains_running_jobs(jobserver, make_agent, make_doc) -> None:
    running = [jobserver.upload(make_doc(f"s{i}.txt", f"sleep 3\nrun {i}"), "document")
               for i in range(2)]
    agent = make_agent(jobserver.url, slots=2)
    for job_id in running:
        agent.wait_for_event("job_downloaded", timeout=60, job_id=job_id)
    waiting = jobserver.upload(make_doc("w.txt", "must stay pending"), "document")
    agent.send(signal.SIGTERM)
    assert agent.wait(60) == 0
    for job_id in running:
        assert jobserver.status(job_id)["status"] == "completed"
    assert jobserver.status(waiting)["status"] == "pending"


def test_second_sigterm_aborts_and_reports_failed(jobserver, make_agent, make_doc) -> None:
    job_id = jobserver.upload(make_doc("long.txt", "sleep 120\nnever finishes"), "document")
    agent = make_agent(jobserver.url, slots=1)
    agent.wait_for_event("job_downloaded", timeout=60, job_id=job_id)
    agent.send(signal.SIGTERM)
    agent.wait_for_event("agent_draining", timeout=30)
    agent.send(signal.SIGTERM)
    assert agent.wait(60) == 0
    status = jobserver.status(job_id)
    assert status["status"] == "failed"
    assert "aborted" in status["error_message"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("{not json", "malformed JSON"),
        ('{"job_id": "5d0c9a52-0000-4000-8000-000000000000"}', "missing fields"),
        ('["a", "list"]', "not an object"),
    ],
)
def test_malformed_poll_answers_keep_agent_alive(jobserver, make_agent, make_doc, body,
                                                 why) -> None:
    jobserver.set_faults([{"method": "GET", "path_regex": r"/poll$", "status": 200,
                           "count": 2, "body": body}])
    agent = make_agent(jobserver.url)
    agent.wait_for_event("poll_failed", timeout=60)
    job_id = jobserver.upload(make_doc("ok.txt", f"after {why}"), "document")
    assert final(jobserver, job_id)["status"] == "completed"
    assert agent.alive


def test_unknown_content_type_is_reported_not_crashed(jobserver, make_agent, make_doc) -> None:
    """A server that hands out a type we did not ask for: the job is failed with the reason."""
    job_id = jobserver.upload(make_doc("x.holo", "weird"), "document")
    forged = (f'{{"job_id": "{job_id}", "source_file_url": "/api/v1/remote-jobs/{job_id}/download",'
              ' "content_type": "hologram", "task_options": {}}')
    jobserver.set_faults([{"method": "GET", "path_regex": r"/poll$", "status": 200,
                           "count": 1, "body": forged}])
    agent = make_agent(jobserver.url)
    event = agent.wait_for_event("job_finished", timeout=60, job_id=job_id)
    assert event["success"] is False
    assert "hologram" in event["error"]
    assert agent.alive


def test_malformed_answer_naming_a_claimed_job_reports_it_failed(jobserver, make_agent,
                                                                  make_doc) -> None:
    """The server marked the job as ours but its answer lacks fields: it must not stay
    `processing` forever, so the agent reports it failed with the reason."""
    job_id = jobserver.upload(make_doc("m.txt", "claimed but malformed"), "document")
    assert jobserver.poll("agent-1", "document")["job_id"] == job_id  # the server's claim
    jobserver.set_faults([
        # no held-jobs answer (as MoRAG): the claim made above stays unknown until the poll
        {"method": "GET", "path_regex": r"/held$", "status": 404, "count": 1},
        {"method": "GET", "path_regex": r"/poll$", "status": 200, "count": 1,
         "body": json.dumps({"job_id": job_id, "content_type": 7})},
    ])
    agent = make_agent(jobserver.url)
    status = final(jobserver, job_id)
    assert status["status"] == "failed"
    assert "malformed" in status["error_message"]
    assert agent.alive


def test_slow_ingestion_timeout_is_not_resubmitted(tmp_path, make_agent, make_doc) -> None:
    """MoRAG ingests inside PUT /result: a client timeout is not a failure. The agent asks the
    job's status and, seeing it completed, does not submit again (which would re-ingest)."""
    from tests.support.morag_double import running_morag_double

    with running_morag_double(tmp_path / "double", result_delay=6) as double:
        job_id = double.create_job(make_doc("slow.txt", "slow ingestion"), "document")
        agent = make_agent(double.url, submit_timeout=1.5)
        agent.wait_for_event("result_confirmed", timeout=90, job_id=job_id)
        assert double.status(job_id)["status"] == "completed"
        spooled = agent.find("result_spooled", job_id=job_id)
        assert len(spooled) == 1 and "timed out" in spooled[0]["error"].lower()
        assert not agent.find("result_submitted", job_id=job_id)


def test_slow_server_answers_still_complete_jobs(jobserver, make_agent, make_doc) -> None:
    jobserver.set_faults([
        {"method": "GET", "path_regex": r"/download$", "delay": 2, "count": 2},
        {"method": "PUT", "path_regex": r"/result$", "delay": 2, "count": 2},
    ])
    ids = [jobserver.upload(make_doc(f"slow{i}.txt", f"slow {i}"), "document") for i in range(2)]
    make_agent(jobserver.url)
    for job_id in ids:
        assert final(jobserver, job_id)["status"] == "completed"
    assert jobserver.stats()["duplicate_results"] == 0


def test_result_in_outbox_at_start_is_confirmed_not_resent(jobserver, make_agent,
                                                           make_doc) -> None:
    """The agent died after its PUT landed but before it recorded that: the restarted agent
    finds the result in its outbox, asks the server, and does not submit it a second time."""
    import sqlite3

    from morag_fleet.jobs.models import JobResult

    job_id = jobserver.upload(make_doc("once.txt", "sent once"), "document")
    agent = make_agent(jobserver.url)
    assert final(jobserver, job_id)["status"] == "completed"
    agent.wait_for_event("result_submitted", timeout=30, job_id=job_id)
    agent.stop()
    with sqlite3.connect(agent.dir / "state" / "journal.sqlite3") as db:
        db.execute("UPDATE jobs SET phase = 'spooled', result_json = ? WHERE job_id = ?",
                   (json.dumps(JobResult(True, content="sent once").to_json()), job_id))
    agent.start()
    agent.wait_for_event("result_confirmed", timeout=60, job_id=job_id)
    assert len(agent.find("result_submitted", job_id=job_id)) == 1
    assert jobserver.stats()["duplicate_results"] == 0
