"""Fixtures of the deploy tests: three real systemd hosts (one controller, two agents) on a private
bridge, the reference job server on the bridge address, and one deployment shared by the tests.

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


@pytest.fixture(scope="session")
def deploy_vars(fleet: Fleet, jobserver: BridgeJobServer) -> Path:
    """Test settings on top of ansible/group_vars: a light agent (base package, text converter)
    so the wheelhouse stays small, and the job server on the bridge."""
    settings: dict[str, Any] = {
        "morag_fleet_wheelhouse_dir": str(DEFAULT_CACHE / "wheelhouse"),
        "morag_fleet_api_base_url": jobserver.url,
        "morag_agent_extras": [],
        "morag_agent_content_types": ["document"],
        "morag_agent_converters": {"document": "text"},
        "morag_agent_system_packages": [],  # the text converter needs no tesseract
        "morag_agent_shutdown_grace": SHUTDOWN_GRACE,
        "morag_agent_heartbeat_interval": 2,
        "morag_agent_poll_interval": 2,
        "morag_fleet_serial": "100%",  # one batch; the rolling-update test uses 1
        # stops (restarts, reboots, teardown) wait for a held poll: keep it short here
        "morag_agent_long_poll_wait": LONG_POLL_WAIT,
    }
    path = fleet.run_dir / "test-vars.yml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="session")
def deploy(fleet: Fleet, deploy_vars: Path):
    def runner(*args: str, **kwargs: Any) -> PlaybookRun:
        return run_playbook(fleet.inventory, deploy_vars, *args, **kwargs)
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
