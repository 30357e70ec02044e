"""Real agents, a real controller with CURVE, the real CLI: the fleet as operators see it."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.fleet import ControllerProc, fleet_cli
from tests.support.agent_proc import SCRIPTED, AgentProcess, wait_until
from tests.support.jobserver import JobServer, running_jobserver

AGENTS = ("fleet-a", "fleet-b")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[JobServer, ControllerProc, dict[str, AgentProcess]]]:
    keys, authorized = tmp_path / "keys", tmp_path / "authorized"
    authorized.mkdir()
    for name in AGENTS:
        made = fleet_cli("keys", "--dir", str(keys), "--name", name)
        assert made.returncode == 0, made.stderr
        shutil.copy(keys / f"{name}.key", authorized / f"{name}.key")
    controller = ControllerProc(tmp_path, plaintext=False,
                                extra=("--authorized-keys", str(authorized))).start()
    agents: dict[str, AgentProcess] = {}
    with running_jobserver(tmp_path / "server") as server:
        try:
            for name in AGENTS:
                agents[name] = AgentProcess(
                    tmp_path, server.url, name, slots=2, converters={"document": SCRIPTED},
                    controller=controller.endpoint, heartbeat_interval=1,
                    controller_public_key=str(controller.state_dir / "controller.key"),
                    agent_key_file=str(keys / f"{name}.key_secret"),
                ).start()
            wait_until(lambda: all(online(controller, n) for n in AGENTS), 60, "agents online")
            yield server, controller, agents
        finally:
            for agent in agents.values():
                agent.stop()
            controller.stop()


def online(controller: ControllerProc, name: str) -> bool:
    row = controller.agent(name)
    return row is not None and row["state"] in ("idle", "busy")


def completed_events(controller: ControllerProc, job_ids: list[str]) -> Counter[str]:
    events = controller.json("events", "--limit", "5000")
    return Counter(e["job_id"] for e in events
                   if e.get("name") == "completed" and e.get("job_id") in job_ids)


def upload(server: JobServer, folder: Path, count: int, text: str) -> list[str]:
    folder.mkdir(exist_ok=True)
    ids = []
    for i in range(count):
        path = folder / f"{text.split()[0]}-{i}.txt"
        path.write_text(f"{text}\njob {i}")
        ids.append(server.upload(path, "document"))
    return ids


def all_completed(server: JobServer, ids: list[str]) -> bool:
    return all(server.status(i)["status"] == "completed" for i in ids)


def test_status_jobs_and_events_on_a_running_fleet(fleet, tmp_path: Path) -> None:
    server, controller, _agents = fleet
    ids = upload(server, tmp_path / "docs", 4, "plain text")
    wait_until(lambda: all_completed(server, ids), 90, "jobs completed")
    wait_until(lambda: len(completed_events(controller, ids)) == 4, 30, "completed events")
    assert set(completed_events(controller, ids).values()) == {1}
    status = controller.json("status")
    assert {row["agent"] for row in status["agents"]} == set(AGENTS)
    wait_until(lambda: controller.json("status")["totals"]["done"] >= 4, 30, "done counters")
    table = controller.cli("status")
    assert table.returncode == 0
    for name in AGENTS:
        assert name in table.stdout
    assert "TOTAL" in table.stdout
    # a running job shows up in `jobs` with its phase
    slow = upload(server, tmp_path / "slow", 1, "sleep 6")
    wait_until(lambda: any(j["job_id"] == slow[0] for j in controller.json("jobs")), 30,
               "the running job listed by `jobs`")
    wait_until(lambda: all_completed(server, slow), 60, "slow job completed")


def test_drain_via_cli_stops_claims_on_that_agent(fleet, tmp_path: Path) -> None:
    server, controller, _agents = fleet
    drained = controller.cli("drain", "fleet-a")
    assert drained.returncode == 0, drained.stderr
    wait_until(lambda: controller.agent("fleet-a")["state"] == "paused", 30, "fleet-a paused")
    ids = upload(server, tmp_path / "docs", 4, "sleep 0.3")
    wait_until(lambda: all_completed(server, ids), 90, "jobs completed")
    assert {server.status(i)["worker_id"] for i in ids} == {"fleet-b"}
    assert controller.cli("resume", "fleet-a").returncode == 0
    wait_until(lambda: controller.agent("fleet-a")["state"] == "idle", 30, "fleet-a resumed")


def test_controller_down_work_goes_on_events_arrive_once(fleet, tmp_path: Path) -> None:
    server, controller, agents = fleet
    controller.stop()
    ids = upload(server, tmp_path / "docs", 5, "offline work")
    wait_until(lambda: all_completed(server, ids), 90, "jobs completed without a controller")
    assert all(agent.alive for agent in agents.values())
    controller.start()
    wait_until(lambda: len(completed_events(controller, ids)) == 5, 60,
               "buffered events delivered")
    assert set(completed_events(controller, ids).values()) == {1}


def test_unauthorized_agent_is_refused(fleet, tmp_path: Path) -> None:
    server, controller, _agents = fleet
    rogue_keys = tmp_path / "rogue"
    assert fleet_cli("keys", "--dir", str(rogue_keys), "--name", "rogue").returncode == 0
    rogue = AgentProcess(tmp_path, server.url, "rogue", converters={"document": SCRIPTED},
                         controller=controller.endpoint, heartbeat_interval=1,
                         controller_public_key=str(controller.state_dir / "controller.key"),
                         agent_key_file=str(rogue_keys / "rogue.key_secret")).start()
    try:
        ids = upload(server, tmp_path / "docs", 2, "still converts")
        wait_until(lambda: all_completed(server, ids), 90, "jobs completed")
        assert controller.agent("rogue") is None
    finally:
        rogue.stop()


def test_a_result_sent_after_an_api_outage_still_completes_the_job_in_the_fleet(
        fleet, tmp_path: Path) -> None:
    """The job's result waits in the outbox while the API is down and is sent by the outbox
    thread later: the controller still hears once that the job completed."""
    server, controller, agents = fleet
    job_id = upload(server, tmp_path / "docs", 1, "sleep 3")[0]
    wait_until(lambda: any(a.find("job_downloaded", job_id=job_id) for a in agents.values()),
               60, "the job downloaded")
    holder = next(a for a in agents.values() if a.find("job_downloaded", job_id=job_id))
    server.stop()
    holder.wait_for_event("result_spooled", timeout=60, job_id=job_id)
    server.start()
    wait_until(lambda: all_completed(server, [job_id]), 90, "the result delivered from the outbox")
    wait_until(lambda: len(completed_events(controller, [job_id])) == 1, 60, "completed event")
    assert completed_events(controller, [job_id])[job_id] == 1
