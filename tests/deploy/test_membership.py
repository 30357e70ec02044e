"""Fleet membership on the deployed fleet, as an operator changes it: removing an agent from the
inventory restarts no other host and drops only its key (a failed release on the remaining agent is
pruned, its last good release kept), then `morag-fleet forget` clears it from the status; adding it
back with `--limit` builds the release its new extras need."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import AGENT_SETTINGS, AGENTS, CONTROLLER, HOST_SETTINGS, write_inventory
from .support import run_playbook, wait_for
from .test_deploy import STATE_DIR, UNITS, agents_online, fleet_status

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]
KEPT, REMOVED = AGENTS
RELEASES = "/opt/morag-agent/releases"
PREVIOUS, FAILED = "0.0.1-previous", "9.9.9-failed"
PRUNE = "morag_fleet_common : Remove releases that are neither current nor kept for rollback"
REVOKE = "morag_controller : Revoke keys of agents that left the inventory"
RELOAD = "morag_controller : Reload morag-fleet-controller"


def started(host, unit: str) -> tuple[str, str]:
    """The unit's main PID and the monotonic time it became active: both change on a restart."""
    props = host.service(unit).systemd_properties
    return props["MainPID"], props["ActiveEnterTimestampMonotonic"]


def leave_two_releases_behind(host) -> None:
    """A previous good release (installed an hour ago) and a newer one that failed halfway (no
    .installed marker, its wheels still there): the newest by date is the broken one."""
    current = host.check_output("readlink -f /opt/morag-agent/current")
    host.check_output(
        f"cp -al {current} {RELEASES}/{PREVIOUS} && rm {RELEASES}/{PREVIOUS}/.installed && "
        f"echo morag-fleet > {RELEASES}/{PREVIOUS}/.installed && "
        f"touch -d '1 hour ago' {RELEASES}/{PREVIOUS}/.installed {RELEASES}/{PREVIOUS} && "
        f"mkdir -p {RELEASES}/{FAILED}/venv/bin && truncate -s 8M {RELEASES}/{FAILED}/wheels.tar")


def test_removing_an_agent_changes_nothing_else(fleet, hosts, jobserver, inventory) -> None:
    wait_for("both agents online", lambda: agents_online(hosts, AGENTS), deadline_s=120)
    before = {CONTROLLER: started(hosts[CONTROLLER], UNITS["controller"]),
              KEPT: started(hosts[KEPT], UNITS["agent"])}
    leave_two_releases_behind(hosts[KEPT])
    write_inventory(fleet, jobserver.url, inventory, agents=[KEPT])
    run = run_playbook(inventory, "-e", "morag_fleet_serial=100%")
    assert run.rc == 0, run.output[-4000:]
    assert set(run.recap()) == {CONTROLLER, KEPT}
    # no other host restarted
    assert started(hosts[CONTROLLER], UNITS["controller"]) == before[CONTROLLER]
    assert started(hosts[KEPT], UNITS["agent"]) == before[KEPT]
    # the controller only revoked the removed agent's key (a reload, no restart) ...
    assert run.changed_tasks(CONTROLLER) == {REVOKE, RELOAD}, run.changed_tasks(CONTROLLER)
    allowed = hosts[CONTROLLER].check_output("ls /etc/morag-fleet/authorized_keys").split()
    assert allowed == [f"{KEPT}.key"]
    # ... and the kept agent only lost its failed release, keeping the last good one
    assert run.changed_tasks(KEPT) == {PRUNE}, run.changed_tasks(KEPT)
    left = set(hosts[KEPT].check_output(f"ls {RELEASES}").split())
    current = hosts[KEPT].check_output("readlink -f /opt/morag-agent/current").rsplit("/", 1)[1]
    assert left == {current, PREVIOUS}

    hosts[CONTROLLER].check_output(f"morag-fleet forget {REMOVED} --state-dir {STATE_DIR}")
    assert REMOVED not in {a["agent"] for a in fleet_status(hosts)["agents"]}


def test_adding_an_agent_with_limit_builds_its_release(fleet, hosts, jobserver,
                                                       inventory) -> None:
    """The host comes back with an extra no host had (gpu): under --limit the release is still
    built for it; the controller in the limit authorizes its key."""
    extras = [*AGENT_SETTINGS["morag_agent_content_types"], "gpu"]
    settings: dict[str, Any] = {**HOST_SETTINGS, REMOVED: {"morag_agent_extras": extras}}
    kept_before = started(hosts[KEPT], UNITS["agent"])
    try:
        write_inventory(fleet, jobserver.url, inventory, host_settings=settings)
        run = run_playbook(inventory, "--limit", f"morag_controller:{REMOVED}",
                           "-e", "morag_fleet_serial=100%")
    finally:  # the later tests deploy this inventory: keep it equal to what the hosts run
        write_inventory(fleet, jobserver.url, inventory, host_settings=settings)
    assert run.rc == 0, run.output[-4000:]
    assert set(run.recap()) == {CONTROLLER, REMOVED}
    hosts[REMOVED].check_output("/opt/morag-agent/current/venv/bin/python -c 'import pynvml'")
    allowed = hosts[CONTROLLER].check_output("ls /etc/morag-fleet/authorized_keys").split()
    assert sorted(allowed) == sorted(f"{a}.key" for a in AGENTS)
    assert started(hosts[KEPT], UNITS["agent"]) == kept_before
    wait_for("the re-added agent online", lambda: agents_online(hosts, AGENTS), deadline_s=180)
