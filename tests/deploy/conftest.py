"""Fixtures of the deploy tests: three real systemd hosts (one controller, two agents) on a private
bridge, the reference job server on the bridge address, an operator's inventory directory with its
own group_vars/ and host_vars/, and one deployment shared by the tests.

Everything is torn down at the end of the session, also when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from .nspawn_fleet.errors import HarnessError
from .nspawn_fleet.fleet import DEFAULT_CACHE, Fleet
from .support import BridgeJobServer, PlaybookRun, run_playbook

GROUPS = {"morag_controller": ["ctl"], "morag_agents": ["agent1", "agent2"]}
AGENTS = GROUPS["morag_agents"]
CONTROLLER = GROUPS["morag_controller"][0]
SHUTDOWN_GRACE = 60
LONG_POLL_WAIT = 5


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    try:
        with Fleet(GROUPS, cache_dir=DEFAULT_CACHE) as booted:
            yield booted
    except HarnessError as exc:
        pytest.fail(f"deploy test hosts: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def jobserver(fleet: Fleet) -> Iterator[BridgeJobServer]:
    with BridgeJobServer(fleet.bridge.address, fleet.run_dir / "jobserver") as server:
        yield server


# What the operator's inventory sets, and where each value must land on the hosts.
FLEET_SETTINGS: dict[str, Any] = {
    "morag_fleet_api_key": "operator-token-7f3a",
    "morag_fleet_wheelhouse_dir": str(DEFAULT_CACHE / "wheelhouse"),
    "morag_agent_shutdown_grace": SHUTDOWN_GRACE,
    "morag_agent_heartbeat_interval": 2,
    "morag_agent_poll_interval": 2,
    # stops (restarts, reboots, teardown) wait for a held poll: keep it short here
    "morag_agent_long_poll_wait": LONG_POLL_WAIT,
    "morag_controller_metrics_port": 9470,
    "morag_controller_url_prefix": "/fleet",
    "morag_controller_dashboard_token": "dashboard-token-51c2",
}
# The agents install every converter extra (markitdown, faster-whisper and the rest).
AGENT_SETTINGS: dict[str, Any] = {
    "morag_agent_content_types": ["audio", "video", "youtube", "document", "image", "web"],
    "morag_agent_max_concurrent_jobs": 2,
}
HOST_SETTINGS: dict[str, dict[str, Any]] = {
    AGENTS[0]: {"morag_agent_max_concurrent_jobs": 3, "morag_agent_log_level": "WARNING"},
}


def write_inventory(fleet: Fleet, api_url: str, directory: Path,
                    agents: list[str] | None = None,
                    host_settings: dict[str, dict[str, Any]] | None = None) -> Path:
    """An operator's inventory directory: hosts.ini, group_vars/ and host_vars/ (the layout of
    inventory.example). `agents` leaves agents out, as an operator removing a host does."""
    agents = AGENTS if agents is None else agents
    lines = []
    for group, members in {**GROUPS, "morag_agents": agents}.items():
        lines += [f"[{group}]", *(f"{name} ansible_host={fleet.hosts[name].address}"
                                  for name in members), ""]
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    (directory / "host_vars").mkdir(exist_ok=True)
    (directory / "hosts.ini").write_text("\n".join(lines))
    connection = {"ansible_user": "root", "ansible_ssh_private_key_file": str(fleet.ssh_key),
                  "ansible_ssh_common_args": f"-F {fleet.ssh_config}"}
    fleet_wide = {**connection, **FLEET_SETTINGS, "morag_fleet_api_base_url": api_url}
    (directory / "group_vars/all.yml").write_text(yaml.safe_dump(fleet_wide))
    (directory / "group_vars/morag_agents.yml").write_text(yaml.safe_dump(AGENT_SETTINGS))
    for old in (directory / "host_vars").glob("*.yml"):
        old.unlink()
    for name, values in (HOST_SETTINGS if host_settings is None else host_settings).items():
        (directory / f"host_vars/{name}.yml").write_text(yaml.safe_dump(values))
    return directory


@pytest.fixture(scope="session")
def inventory(fleet: Fleet, jobserver: BridgeJobServer) -> Path:
    return write_inventory(fleet, jobserver.url, fleet.run_dir / "inventory")


@pytest.fixture(scope="session")
def deploy(inventory: Path):
    def runner(*args: str, **kwargs: Any) -> PlaybookRun:
        # one batch; the rolling-update test uses 1
        return run_playbook(inventory, "-e", "morag_fleet_serial=100%", *args, **kwargs)
    return runner


@pytest.fixture(scope="session")
def first_deploy(deploy) -> PlaybookRun:
    """The initial rollout every other deploy test builds on."""
    return deploy()


@pytest.fixture(scope="session")
def hosts(fleet: Fleet, first_deploy: PlaybookRun) -> dict[str, Any]:
    """testinfra hosts over SSH (the fast backend), after the first deployment."""
    return {name: testinfra.get_host(f"ssh://{name}", ssh_config=str(fleet.ssh_config))
            for name in fleet.hosts}
