"""Claims that outlive a damaged journal, leases kept from claim to delivery, results the server
refuses, and a stop while idle, each with real agent processes, signals, files and the reference
job server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tests.support.agent_proc import REPO_ROOT, wait_until
from tests.support.jobserver import running_jobserver


def final(server, job_id: str, timeout: float = 90) -> dict:
    return wait_until(lambda: (s := server.status(job_id))["status"] in ("completed", "failed")
                      and s, timeout, f"job {job_id} final")


def _killed_mid_conversion(server, make_agent, make_doc):
    job_id = server.upload(make_doc("long.txt", "sleep 3\nkept across the crash"), "document")
    agent = make_agent(server.url, slots=1)
    agent.wait_for_event("job_downloaded", timeout=60, job_id=job_id)
    agent.kill()
    return agent, job_id


def test_claim_survives_a_damaged_wal_and_the_damage_is_reported(jobserver, make_agent,
                                                                 make_doc) -> None:
    agent, job_id = _killed_mid_conversion(jobserver, make_agent, make_doc)
    wal = agent.dir / "state" / "journal.sqlite3-wal"
    data = bytearray(wal.read_bytes())
    data[100:200] = bytes(b ^ 0xFF for b in data[100:200])
    wal.write_bytes(bytes(data))
    agent.start()
    damaged = agent.wait_for_event("journal_damaged", timeout=30)
    assert damaged["path"].endswith("journal.sqlite3") and "fails its checksum" in damaged["lost"]
    agent.wait_for_event("job_resumed", timeout=30, job_id=job_id)
    assert final(jobserver, job_id)["status"] == "completed"


def test_lost_journal_is_reported_and_the_held_job_run_again(jobserver, make_agent,
                                                             make_doc) -> None:
    agent, job_id = _killed_mid_conversion(jobserver, make_agent, make_doc)
    for path in (agent.dir / "state").glob("journal.sqlite3*"):
        path.unlink()
    agent.start()
    assert "is missing" in agent.wait_for_event("journal_damaged", timeout=30)["lost"]
    agent.wait_for_event("job_forgotten", timeout=30, job_id=job_id)
    assert final(jobserver, job_id)["status"] == "completed"
    check = subprocess.run(
        [sys.executable, "-m", "morag_fleet.cli.agent_main", "check", "--offline", "--json",
         "--config", str(agent.config_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)
    journal = next(c for c in json.loads(check.stdout)["checks"] if c["name"] == "journal")
    assert not journal["ok"] and "is missing" in journal["detail"]


def test_lease_is_renewed_through_download_and_delivery(tmp_path, make_agent, make_doc) -> None:
    with running_jobserver(tmp_path / "leased", lease_seconds=3, faults=True) as server:
        server.set_faults([
            {"method": "GET", "path_regex": r"/download$", "delay": 5, "count": 1},
            {"method": "PUT", "path_regex": r"/result$", "delay": 5, "count": 1},
        ])
        job_id = server.upload(make_doc("slow.txt", "slow both ways"), "document")
        agent = make_agent(server.url, slots=1)
        status = final(server, job_id)
        assert status["status"] == "completed" and status["retry_count"] == 0
        assert server.stats()["lease_expiries"] == 0
        agent.wait_for_event("result_submitted", timeout=30, job_id=job_id)


def test_result_of_a_job_another_worker_finished_is_refused(tmp_path, make_agent,
                                                            make_doc) -> None:
    """The agent is frozen past its lease; another agent runs the job. Thawed, the first one's
    result is refused, logged and counted as such, and not retried."""
    with running_jobserver(tmp_path / "leased", lease_seconds=2) as server:
        job_id = server.upload(make_doc("twice.txt", "sleep 1\nrun twice"), "document")
        frozen = make_agent(server.url, "frozen", slots=1)
        frozen.wait_for_event("job_downloaded", timeout=60, job_id=job_id)
        frozen.send(signal.SIGSTOP)
        make_agent(server.url, "other", slots=1)
        assert final(server, job_id)["status"] == "completed"
        frozen.send(signal.SIGCONT)
        refused = frozen.wait_for_event("result_refused", timeout=60, job_id=job_id)
        assert "409" in refused["reason"]
        assert server.result(job_id)["metadata"]["slot_pid"] not in frozen.slot_pids()
        assert frozen.stop() == 0
        stopped = frozen.wait_for_event("agent_stopped")
        assert stopped["counters"]["refused"] == 1 and stopped["outbox_depth"] == 0
        assert not frozen.find("result_submitted", job_id=job_id)
        assert len(frozen.find("result_refused", job_id=job_id)) == 1


def test_sigterm_while_idle_claims_nothing_and_exits_at_once(jobserver, make_agent,
                                                             make_doc) -> None:
    agent = make_agent(jobserver.url, slots=1, long_poll_wait=20)
    wait_until(lambda: jobserver.stats()["long_polls_waiting"] == 1, 30, "the agent's long poll")
    started = time.monotonic()
    agent.send(signal.SIGTERM)
    time.sleep(0.3)
    job_id = jobserver.upload(make_doc("after.txt", "submitted after SIGTERM"), "document")
    assert agent.wait(30) == 0
    assert time.monotonic() - started < 2.5
    assert jobserver.status(job_id)["status"] == "pending"
    assert jobserver.stats()["claims"] == 0


def test_result_answered_200_but_not_kept_is_discarded(jobserver, make_agent, make_doc) -> None:
    """A server that answers 200 while keeping another outcome than the one sent."""
    jobserver.set_faults([{"method": "PUT", "path_regex": r"/result$", "status": 200, "count": 1,
                           "body": {"status": "failed", "ingestion_continued": False}}])
    job_id = jobserver.upload(make_doc("kept.txt", "converted fine"), "document")
    agent = make_agent(jobserver.url, slots=1)
    agent.wait_for_event("result_discarded", timeout=60, job_id=job_id)
    assert agent.stop() == 0
    assert agent.wait_for_event("agent_stopped")["counters"]["discarded"] == 1
    assert not agent.find("result_submitted", job_id=job_id)
