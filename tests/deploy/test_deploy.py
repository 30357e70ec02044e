"""The playbook on three real systemd hosts: what it installs, how the units are hardened, that
the fleet works (agents online at the controller, a job converted), idempotence and check mode."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import AGENTS, CONTROLLER, LONG_POLL_WAIT, SHUTDOWN_GRACE
from .support import wait_for

pytestmark = pytest.mark.deploy
UNITS = {"agent": "morag-agent.service", "controller": "morag-fleet-controller.service"}
STATE_DIR = "/var/lib/morag-fleet"
TIMESPAN = re.compile(r"(\d+(?:\.\d+)?)(us|ms|min|s|h|d)")
UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400}


def seconds(timespan: str) -> float:
    """`systemctl show` prints timespans like '1min 30s'."""
    parts = TIMESPAN.findall(timespan.replace(" ", ""))
    assert parts, f"not a systemd timespan: {timespan!r}"
    return sum(float(n) * UNIT_SECONDS[unit] for n, unit in parts)


def fleet_status(hosts: dict[str, Any]) -> dict[str, Any]:
    out = hosts[CONTROLLER].check_output(f"morag-fleet status --json --state-dir {STATE_DIR}")
    return json.loads(out)


def agents_online(hosts: dict[str, Any], names: list[str]) -> dict[str, Any] | None:
    status = fleet_status(hosts)
    states = {a["agent"]: a["state"] for a in status["agents"]}
    ready = all(states.get(name) in ("idle", "busy") for name in names)
    return status if ready else None


def test_first_deploy_succeeds(first_deploy) -> None:
    recap = first_deploy.recap()
    failures = [line for line in first_deploy.output.splitlines() if line.startswith("fatal:")]
    assert first_deploy.rc == 0, "\n".join(failures)[:6000] or first_deploy.output[-4000:]
    assert set(recap) == {"localhost", CONTROLLER, *AGENTS}
    for host, counts in recap.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)
    for host in (CONTROLLER, *AGENTS):
        assert recap[host]["changed"] > 0, f"{host} was not deployed: {recap[host]}"


@pytest.mark.parametrize("name,unit", [*((a, UNITS["agent"]) for a in AGENTS),
                                       (CONTROLLER, UNITS["controller"])])
def test_units_enabled_and_running(hosts, name: str, unit: str) -> None:
    service = hosts[name].service(unit)
    assert service.is_enabled
    assert service.is_running


@pytest.mark.parametrize("name", AGENTS)
def test_agent_unit_is_hardened(hosts, name: str) -> None:
    props = hosts[name].service(UNITS["agent"]).systemd_properties
    assert props["Type"] == "notify"
    assert seconds(props["WatchdogUSec"]) > 0
    assert props["Restart"] == "on-failure"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["StateDirectory"] == "morag-agent"
    assert props["User"] == "morag-agent"
    # SIGTERM to the agent alone, and systemd waits longer than the agent's drain grace.
    assert props["KillMode"] == "mixed"
    assert seconds(props["TimeoutStopUSec"]) >= SHUTDOWN_GRACE + LONG_POLL_WAIT
    # GPU slots need /dev/nvidia*: no private /dev, no device allow-list.
    assert props["PrivateDevices"] == "no"
    assert props.get("DeviceAllow", "") == ""
    assert props.get("DevicePolicy", "auto") == "auto"


def test_controller_unit_is_hardened_and_listens(hosts) -> None:
    host = hosts[CONTROLLER]
    props = host.service(UNITS["controller"]).systemd_properties
    assert props["Type"] == "notify"
    assert seconds(props["WatchdogUSec"]) > 0
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "StateDirectory": "morag-fleet",
                       "User": "morag-fleet"}.items():
        assert props[key] == value, key
    assert host.socket("tcp://0.0.0.0:5555").is_listening
    assert host.socket("tcp://0.0.0.0:9464").is_listening
    metrics = host.check_output("python3 -c \"import urllib.request; print(urllib.request"
                                ".urlopen('http://127.0.0.1:9464/metrics').read().decode())\"")
    assert "morag" in metrics


@pytest.mark.parametrize("name", AGENTS)
def test_agent_user_keys_and_config_modes(hosts, name: str) -> None:
    host = hosts[name]
    user = host.user("morag-agent")
    assert user.exists and user.shell == "/usr/sbin/nologin" and user.uid < 1000
    secret = host.file("/etc/morag-agent/keys/agent.key_secret")
    assert secret.is_file and secret.mode == 0o600 and secret.user == "morag-agent"
    assert "secret-key" in host.check_output("cat /etc/morag-agent/keys/agent.key_secret")
    public = host.file("/etc/morag-agent/keys/agent.key")
    assert public.mode == 0o644 and "secret-key" not in public.content_string
    config = host.file("/etc/morag-agent/config.yaml")
    assert config.mode == 0o640 and config.user == "root" and config.group == "morag-agent"
    assert host.file("/etc/morag-agent/controller.key").is_file
    assert host.file("/opt/morag-agent/current/venv/bin/morag-agent").exists


def test_controller_keys_and_allow_list(hosts, fleet) -> None:
    host = hosts[CONTROLLER]
    secret = host.file("/etc/morag-fleet/controller.key_secret")
    assert secret.mode == 0o600 and secret.user == "morag-fleet"
    allowed = sorted(host.check_output("ls /etc/morag-fleet/authorized_keys").split())
    assert allowed == sorted(f"{a}.key" for a in AGENTS)
    for agent in AGENTS:  # the allow-list holds exactly the agents' own public keys
        on_agent = hosts[agent].file("/etc/morag-agent/keys/agent.key").content_string
        assert host.file(f"/etc/morag-fleet/authorized_keys/{agent}.key").content_string == on_agent
    # secrets never reached the control node: only public keys were fetched
    fetched = [p for p in (fleet.run_dir / "fleet-keys").rglob("*") if p.is_file()]
    assert fetched and all("secret-key" not in p.read_text() for p in fetched)


@pytest.mark.parametrize("name", AGENTS)
def test_ffmpeg_present(hosts, name: str) -> None:
    assert hosts[name].package("ffmpeg").is_installed
    assert "ffmpeg version" in hosts[name].check_output("ffmpeg -hide_banner -version")


def test_agents_online_at_controller(hosts) -> None:
    status = wait_for("both agents online in `morag-fleet status`",
                      lambda: agents_online(hosts, AGENTS), deadline_s=90)
    assert status["controller"]["curve"] is True
    assert status["totals"]["online"] >= len(AGENTS)
    assert {a["agent"] for a in status["agents"]} >= set(AGENTS)


def test_job_converted_by_deployed_agent(hosts, jobserver, tmp_path: Path) -> None:
    marker = f"deployed-fleet-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "fleet-note.txt"
    source.write_text(f"A note for the fleet\n\nThe marker is {marker}.\n")
    job_id = jobserver.upload(source)
    status = wait_for("the job to complete",
                      lambda: (s := jobserver.status(job_id))["status"] in ("completed", "failed")
                      and s, deadline_s=120)
    assert status["status"] == "completed", status
    assert status["worker_id"] in AGENTS
    result = jobserver.result(job_id)
    assert marker in result["content"]
    assert result["content"].lstrip().startswith("#")


def test_second_run_changes_nothing(deploy, first_deploy) -> None:
    second = deploy()
    assert second.rc == 0, second.output[-4000:]
    recap = second.recap()
    assert set(recap) == {"localhost", CONTROLLER, *AGENTS}
    changed = {host: counts["changed"] for host, counts in recap.items()}
    assert changed == dict.fromkeys(recap, 0), second.output[-6000:]


PLAN_REPO = ("nvidia_gpu : Plan the CUDA repository "
             "(check mode; the keyring package is not on the host yet)")
PLAN_DRIVER = ("nvidia_gpu : Plan the driver installation "
               "(check mode; its package source is not on the host yet)")


def test_check_mode_with_forced_gpu_plans_driver_tasks(deploy, hosts) -> None:
    pids = {a: hosts[a].service(UNITS["agent"]).systemd_properties["MainPID"] for a in AGENTS}
    # with the wheelhouse as it is (the air-gapped way): a check run builds nothing
    run = deploy("--check", "-e", "nvidia_gpu_force=true",
                 "-e", "morag_fleet_wheelhouse_build=false")
    assert run.rc == 0, run.output[-4000:]
    for agent in AGENTS:
        # only the GPU driver is planned: the deployed agent itself is already as it should be
        assert run.changed_tasks(agent) == {"nvidia_gpu : Create the download directory", PLAN_REPO,
                                            PLAN_DRIVER}, run.changed_tasks(agent)
    plan = run.messages(PLAN_DRIVER, AGENTS[0])[0]
    assert "cuda-drivers-550" in plan and "libcudnn9-cuda-12" in plan
    assert "nvidia-persistenced" in plan
    assert run.changed_tasks(CONTROLLER) == set()
    for agent in AGENTS:  # check mode changed nothing on the hosts
        assert not hosts[agent].file("/var/cache/nvidia-gpu").exists
        assert hosts[agent].service(UNITS["agent"]).systemd_properties["MainPID"] == pids[agent]


def test_gpu_detection_reads_pci_sysfs(fleet, deploy, hosts) -> None:
    """Detection on a fake PCI tree: NVIDIA VGA and 3D controllers count; an NVIDIA audio
    function and an Intel VGA controller do not."""
    tree = "/srv/fake-pci"
    devices = {"0000:3b:00.0": ("0x10de", "0x030200"), "0000:3b:00.1": ("0x10de", "0x040300"),
               "0000:00:02.0": ("0x8086", "0x030000"), "0000:af:00.0": ("0x10de", "0x030000")}
    script = " && ".join(f"mkdir -p {tree}/{addr} && echo {vendor} > {tree}/{addr}/vendor && "
                         f"echo {cls} > {tree}/{addr}/class"
                         for addr, (vendor, cls) in devices.items())
    hosts[AGENTS[0]].check_output(script)
    try:
        run = deploy("-l", AGENTS[0], "-e", f"nvidia_gpu_pci_devices_dir={tree}",
                     playbook="tests/deploy/playbooks/detect-gpus.yml")
    finally:
        hosts[AGENTS[0]].check_output(f"rm -rf {tree}")
    assert run.rc == 0, run.output[-4000:]
    shown = run.messages("Show the detection", AGENTS[0])
    assert shown == [{"devices": ["0000:3b:00.0", "0000:af:00.0"], "enabled": True}]


def test_hosts_without_gpu_skip_driver_tasks(first_deploy) -> None:
    assert first_deploy.output.count("0 NVIDIA GPU(s) found") == len(AGENTS)
    assert first_deploy.output.count("driver tasks skipped") == len(AGENTS)
    assert "nvidia_gpu : Install the NVIDIA driver" not in first_deploy.output
    assert "nvidia_gpu : Install the keyring package" not in first_deploy.output
