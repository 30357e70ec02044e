"""The harness's own guards, without booting anything: it refuses to run without root (before
touching the machine) and finds the Debian mirror in both apt source formats."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .nspawn_fleet import errors
from .nspawn_fleet.errors import HarnessError
from .nspawn_fleet.fleet import Fleet
from .nspawn_fleet.host import _children, _comm
from .nspawn_fleet.mirrors import find_mirrors


def test_refuses_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(errors.os, "geteuid", lambda: 1000)
    fleet = Fleet({"morag_agents": ["a1"]}, cache_dir=tmp_path / "cache",
                  bridge="mfleet-guard")
    with pytest.raises(HarnessError, match=r"must run as root.*-m 'not deploy'"):
        fleet.__enter__()
    assert not (tmp_path / "cache").exists()
    assert not Path("/sys/class/net/mfleet-guard").exists()


def test_finds_mirrors_in_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    (tmp_path / "other.list").write_text(
        "deb [arch=amd64] https://vendor.example/apt bookworm main\n")
    mirrors = find_mirrors("bookworm", tmp_path)
    assert mirrors.archive == "http://mirror.example/debian"
    assert mirrors.security == "http://mirror.example/debian-security"


def test_no_usable_mirror_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "vendor.list").write_text("deb https://vendor.example/apt bookworm main\n")
    with pytest.raises(HarnessError, match="no http Debian mirror for bookworm"):
        find_mirrors("bookworm", tmp_path)


def test_child_lookup_survives_children_that_exit_meanwhile() -> None:
    """Booting nspawn forks short-lived helpers next to the container's systemd; looking for
    the leader among them must skip a child that exits between listing and reading it."""
    churn = subprocess.Popen(["sh", "-c", "sleep 30 & while :; do /bin/true; done"],
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 10  # the shell starts its children first
        while "sleep" not in [_comm(child) for child in _children(churn.pid)]:
            assert time.monotonic() < deadline, "the test's shell never started its sleep"
        names = [[_comm(child) for child in _children(churn.pid)] for _ in range(3000)]
    finally:
        os.killpg(churn.pid, signal.SIGKILL)  # the shell and its sleep
        churn.wait()
    assert all("sleep" in seen for seen in names)  # the long-lived child is found every time
    assert any(None in seen or "true" in seen for seen in names)  # and the churn was seen
    assert _comm(churn.pid) is None and _children(churn.pid) == []


@pytest.mark.deploy
def test_failed_start_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that fails to boot: mounts, bridge, apt proxy, cgroups and files are all gone."""
    from .nspawn_fleet import host as host_module

    def broken_boot(self: host_module.Host, deadline_s: float = 0) -> None:
        raise HarnessError(f"{self.name} refuses to boot (on purpose)")

    monkeypatch.setattr(host_module.Host, "boot", broken_boot)
    fleet = Fleet({"morag_agents": ["fail1", "fail2"]}, bridge="mfleet-fail",
                  subnet="10.78.0.0/24", proxy_port=3143)
    with pytest.raises(HarnessError, match="refuses to boot"):
        fleet.__enter__()
    assert fleet.run_dir.name.startswith("morag-fleet-hosts-")
    assert not fleet.run_dir.exists()
    assert str(fleet.run_dir) not in Path("/proc/mounts").read_text()
    assert not Path("/sys/class/net/mfleet-fail").exists()
    assert fleet.proxy is not None and fleet.proxy.process is None
    for name in ("fail1", "fail2"):
        assert not any(Path(root, f"morag-test-{name}").exists()
                       for root in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"))
