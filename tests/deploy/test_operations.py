"""Day-two operations on the deployed fleet: a host reboot, and a rolling update that restarts
an agent in the middle of a job (the job must finish first)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .conftest import AGENTS, CONTROLLER
from .support import wait_for
from .test_deploy import UNITS, agents_online, fleet_status

pytestmark = pytest.mark.deploy


def _agent_started_at(host) -> float:
    """When the agent's current process started (epoch seconds), from systemd."""
    value = host.check_output(
        f"systemctl show -p ActiveEnterTimestamp --timestamp=unix {UNITS['agent']}")
    return float(value.split("=", 1)[1].lstrip("@"))


def test_agent_comes_back_after_reboot(fleet, hosts, first_deploy) -> None:
    name = AGENTS[1]
    boot_before = hosts[name].check_output("cat /proc/sys/kernel/random/boot_id")
    rebooted_at = time.time()
    fleet.host(name).reboot_and_wait()
    assert hosts[name].check_output("cat /proc/sys/kernel/random/boot_id") != boot_before
    wait_for(f"{name}'s agent running after the reboot",
             lambda: hosts[name].service(UNITS["agent"]).is_running, deadline_s=120)
    assert _agent_started_at(hosts[name]) > rebooted_at

    def seen_since_reboot() -> bool:
        status = agents_online(hosts, [name])
        agent = status and next(a for a in status["agents"] if a["agent"] == name)
        return bool(agent and agent["last_seen"] > rebooted_at)

    wait_for(f"{name} online again at the controller", seen_since_reboot, deadline_s=120)


def test_rolling_update_lets_running_job_finish(deploy, hosts, jobserver,
                                                tmp_path: Path) -> None:
    wait_for("both agents online", lambda: agents_online(hosts, AGENTS), deadline_s=120)
    # The next download is held for 20 s, so the job is still running when the update's
    # restart reaches its agent.
    jobserver.set_faults([{"method": "GET", "path_regex": "/download$", "delay": 20,
                           "count": 1}])
    marker = f"rolling-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "rolling.txt"
    source.write_text(f"Written during a rolling update: {marker}\n")
    job_id = jobserver.upload(source)
    claimed = wait_for("the job to be claimed",
                       lambda: (s := jobserver.status(job_id))["status"] == "processing" and s,
                       deadline_s=60, every_s=0.3)
    worker = claimed["worker_id"]
    assert worker in AGENTS

    # A config change on every agent: each one is drained and restarted, one at a time.
    update = deploy("-e", "morag_agent_log_level=DEBUG", "-e", "morag_fleet_serial=1")
    jobserver.clear_faults()
    assert update.rc == 0, update.output[-4000:]
    recap = update.recap()
    assert all(recap[a]["changed"] > 0 for a in AGENTS), recap
    assert recap[CONTROLLER]["changed"] == 0, recap

    status = jobserver.status(job_id)
    assert status["status"] == "completed", status
    assert status["worker_id"] == worker and status["retry_count"] == 0, status
    assert marker in jobserver.result(job_id)["content"]
    completed = datetime.fromisoformat(status["completed_at"]).replace(tzinfo=UTC).timestamp()
    restarted = _agent_started_at(hosts[worker])
    assert completed <= restarted, "the agent restarted before its job was finished"
    for agent in AGENTS:
        assert "level: DEBUG" in hosts[agent].check_output("cat /etc/morag-agent/config.yaml")
        assert hosts[agent].service(UNITS["agent"]).is_running
    wait_for("both agents online after the update",
             lambda: agents_online(hosts, AGENTS), deadline_s=120)
    assert fleet_status(hosts)["totals"]["lost"] == 0
