"""Operator actions through the real CLI, a real controller, a real agent process and the reference
job server: cancel a job in each phase of its life, drain with a note and a time to resume."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tests.controller.fleet import ControllerProc
from tests.support.agent_proc import AgentProcess, wait_until
from tests.support.jobserver import JobServer

NOTE = "wrong file uploaded"


@pytest.fixture
def agent(jobserver: JobServer, make_agent: Callable[..., AgentProcess],
          controller: ControllerProc) -> AgentProcess:
    started = make_agent(jobserver.url, slots=1, selftest=False, controller=controller.endpoint,
                         telemetry_plaintext=True, heartbeat_interval=1)
    wait_until(lambda: (controller.agent("agent-1") or {}).get("state") == "idle", 60,
               "agent-1 online at the controller")
    return started


def running_phase(controller: ControllerProc, job_id: str) -> str | None:
    for job in controller.json("jobs"):
        if job["job_id"] == job_id:
            return job["phase"]
    return None


def results_sent(jobserver: JobServer) -> tuple[int, int]:
    stats = jobserver.stats()
    return stats.get("results", 0), stats.get("duplicate_results", 0)


def test_cancel_while_converting_fails_the_job_once_and_the_agent_goes_on(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    job_id = jobserver.create(make_doc("slow.txt", "sleep 120\n"), "document")
    wait_until(lambda: running_phase(controller, job_id) == "converting", 60, "converting")
    slot_pid = agent.wait_for_event("slot_started", timeout=10)["pid"]

    cancelled = controller.cli("cancel", job_id, "--note", NOTE, "--grace", "3")

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {job_id} cancelled on agent-1" in cancelled.stdout
    assert f"cancelled by operator: {NOTE}" in cancelled.stdout
    assert jobserver.status(job_id)["status"] == "failed"
    assert jobserver.result(job_id)["error_message"] == f"cancelled by operator: {NOTE}"
    recycled = agent.wait_for_event("slot_recycled", timeout=10, reason="cancelled")
    assert recycled["pid"] == slot_pid and recycled["ended_by"] == "SIGTERM"
    # the agent keeps working: its next job converts in a fresh slot process
    next_id = jobserver.create(make_doc("next.txt", "plain text after the cancel\n"), "document")
    wait_until(lambda: jobserver.status(next_id)["status"] == "completed", 60, "next job")
    assert agent.alive
    # cancelling the ended job again: a clear refusal, and nothing is reported a second time
    again = controller.cli("cancel", job_id)
    assert again.returncode == 1
    assert "ended already (failed: cancelled by operator" in again.stderr
    assert results_sent(jobserver) == (2, 0)
    failed = [e for e in controller.json("events", "--job", job_id) if e["name"] == "failed"]
    assert len(failed) == 1 and failed[0]["body"]["error"] == f"cancelled by operator: {NOTE}"


def test_a_slot_that_ignores_sigterm_is_killed_after_the_grace_period(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    job_id = jobserver.create(make_doc("stubborn.txt", "sleep-ignoring-term 120\n"), "document")
    wait_until(lambda: running_phase(controller, job_id) == "converting", 60, "converting")
    started = time.monotonic()

    cancelled = controller.cli("cancel", job_id, "--grace", "2", "--json")

    assert cancelled.returncode == 0, cancelled.stderr
    assert time.monotonic() - started >= 2  # SIGKILL only once the grace period had passed
    assert agent.wait_for_event("slot_recycled", timeout=10,
                                reason="cancelled")["ended_by"] == "SIGKILL"
    assert jobserver.result(job_id)["error_message"] == "cancelled by operator"
    assert results_sent(jobserver) == (1, 0)
    assert agent.alive


def test_cancel_while_the_result_is_delivered_is_refused_and_the_result_stands(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    jobserver.set_faults([{"method": "PUT", "path_regex": "/result$", "delay": 8, "count": 1}])
    job_id = jobserver.create(make_doc("quick.txt", "converted before the cancel\n"), "document")
    agent.wait_for_event("job_converted", timeout=60, job_id=job_id)
    wait_until(lambda: any(e["name"] == "spooled"
                           for e in controller.json("events", "--job", job_id)), 30,
               "the controller heard the result was spooled")

    refused = controller.cli("cancel", job_id, "--note", "too slow")

    assert refused.returncode == 1
    assert "being delivered" in refused.stderr and "too late" in refused.stderr
    wait_until(lambda: jobserver.status(job_id)["status"] == "completed", 60, "delivered")
    assert results_sent(jobserver) == (1, 0)
    assert not [e for e in controller.json("events", "--job", job_id) if e["name"] == "failed"]


def test_cancel_of_a_job_nobody_runs_says_so(controller: ControllerProc,
                                              agent: AgentProcess) -> None:
    result = controller.cli("cancel", "no-such-job")
    assert result.returncode == 1
    assert "no agent runs job no-such-job" in result.stderr


def test_drain_with_a_note_shows_everywhere_and_ends_by_itself(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    drained = controller.cli("drain", "agent-1", "--note", "driver update", "--until", "20s")
    assert drained.returncode == 0, drained.stderr
    assert "drain sent to agent-1: driver update (resumes by itself at" in drained.stdout
    wait_until(lambda: controller.agent("agent-1")["state"] == "paused", 30, "paused")
    row = controller.agent("agent-1")
    assert row["drain_note"] == "driver update" and row["drain_until"] > time.time()
    status = controller.cli("status").stdout
    assert "paused: drained (driver update, until " in status
    assert "driver update" in controller.cli("agents").stdout
    job_id = jobserver.create(make_doc("waits.txt", "claimed after the drain\n"), "document")
    time.sleep(2)
    assert jobserver.status(job_id)["status"] == "pending"
    # the agent resumes by itself at the drain's end and claims again
    wait_until(lambda: jobserver.status(job_id)["status"] == "completed", 60, "claimed later")
    agent.wait_for_event("drain_expired", timeout=5)
    # the controller hears of it with the agent's next heartbeat
    wait_until(lambda: controller.agent("agent-1")["drain_note"] is None, 10, "note cleared")
    names = [e["name"] for e in controller.json("events", "--agent", "agent-1")]
    assert "paused" in names and "resumed" in names


def test_a_drain_outlives_an_agent_restart_until_resumed(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    assert controller.cli("drain", "agent-1", "--note", "disk swap", "--until", "2h"
                          ).returncode == 0
    wait_until(lambda: controller.agent("agent-1")["state"] == "paused", 30, "paused")
    agent.stop()
    agent.start()
    agent.wait_for_event("drained_at_start", timeout=10, note="disk swap")
    job_id = jobserver.create(make_doc("later.txt", "after the maintenance\n"), "document")
    wait_until(lambda: (controller.agent("agent-1") or {}).get("drain_note") == "disk swap"
               and controller.agent("agent-1")["state"] == "paused", 30, "paused again")
    assert jobserver.status(job_id)["status"] == "pending"
    assert controller.cli("resume", "agent-1").returncode == 0
    wait_until(lambda: jobserver.status(job_id)["status"] == "completed", 60, "claimed")


def test_drain_refuses_an_end_time_it_cannot_read(controller: ControllerProc,
                                                 agent: AgentProcess) -> None:
    result = controller.cli("drain", "agent-1", "--until", "tomorrowish")
    assert result.returncode == 1
    assert "use a time of day (14:00) or a duration" in result.stderr
    assert controller.agent("agent-1")["state"] == "idle"


def test_job_history_and_failures_survive_a_controller_restart(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    done = jobserver.create(make_doc("done.txt", "sleep 1.5\n"), "document")
    wait_until(lambda: jobserver.status(done)["status"] == "completed", 60, "first job")
    stopped = jobserver.create(make_doc("stopped.txt", "sleep 120\n"), "document")
    wait_until(lambda: running_phase(controller, stopped) == "converting", 60, "converting")
    assert controller.cli("cancel", stopped, "--note", NOTE, "--grace", "1").returncode == 0
    wait_until(lambda: controller.json("job", done)["job"]["state"] == "completed", 30,
               "the first job's row")

    controller.stop()
    controller.start()

    timeline = controller.json("job", done)
    assert [e["name"] for e in timeline["events"]] == [
        "claimed", "downloading", "converting", "spooled", "completed"]
    phases = timeline["phases"]
    assert all(isinstance(phases[p], float) for p in ("wait", "download", "convert", "deliver"))
    assert phases["convert"] >= 1.5  # the converter slept that long
    groups = controller.json("failures")["groups"]
    assert [(g["reason"], g["count"], g["agents"], g["content_types"]) for g in groups] == [
        ("cancelled", 1, {"agent-1": 1}, {"document": 1})]
    failed = controller.json("history", "--state", "failed")
    assert [(j["job_id"], j["error"]) for j in failed] == [
        (stopped, f"cancelled by operator: {NOTE}")]
    text = controller.cli("job", stopped).stdout
    for word in ("command", "cancel", "slot_recycled", "failed", NOTE, "phases:"):
        assert word in text
    assert {j["job_id"] for j in controller.json("history", "--since", "1h")} == {done, stopped}


def test_a_cancel_holds_across_an_agent_crash(
        jobserver: JobServer, agent: AgentProcess, controller: ControllerProc, make_doc) -> None:
    """The agent accepted the cancel and died before reporting it: the restarted agent reports
    the job cancelled instead of running it again, once."""
    job_id = jobserver.create(make_doc("stubborn.txt", "sleep-ignoring-term 120\n"), "document")
    wait_until(lambda: running_phase(controller, job_id) == "converting", 60, "converting")
    controller.cli("cancel", job_id, "--note", NOTE, "--grace", "60", "--wait", "1")
    agent.wait_for_event("controller_command", timeout=10, command="cancel", job_id=job_id,
                         outcome="cancelling")
    agent.kill()  # within the grace period: the slot still ignores its SIGTERM

    agent.start()

    agent.wait_for_event("job_cancel_kept", timeout=60, job_id=job_id)
    wait_until(lambda: jobserver.status(job_id)["status"] == "failed", 60, "reported")
    assert jobserver.result(job_id)["error_message"] == f"cancelled by operator: {NOTE}"
    assert not agent.find("job_resumed", job_id=job_id)
    assert results_sent(jobserver) == (1, 0)
