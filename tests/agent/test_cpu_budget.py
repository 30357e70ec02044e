"""The CPU budget: usable CPUs from affinity and cgroup quota, shared among slots, shown by
`show-config` and `check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.agent_proc import REPO_ROOT

from morag_fleet.cpu import cgroup_cpu_quota, cpu_budget


def cgroup_tree(tmp_path: Path, files: dict[str, str], proc_line: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(proc_line + "\n")
    return root, proc


def test_cgroup_v2_quota_of_the_closest_limited_ancestor(tmp_path: Path) -> None:
    root, proc = cgroup_tree(tmp_path, {
        "system.slice/cpu.max": "150000 100000\n",
        "system.slice/morag-agent.service/cpu.max": "max 100000\n",
    }, "0::/system.slice/morag-agent.service")
    assert cgroup_cpu_quota(root, proc) == 1.5


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root, proc = cgroup_tree(tmp_path, {
        "cpu,cpuacct/agent/cpu.cfs_quota_us": "300000\n",
        "cpu,cpuacct/agent/cpu.cfs_period_us": "100000\n",
    }, "4:cpu,cpuacct:/agent")
    assert cgroup_cpu_quota(root, proc) == 3.0


def test_unlimited_or_unreadable_cgroup_is_no_quota(tmp_path: Path) -> None:
    root, proc = cgroup_tree(tmp_path, {"cpu.max": "max 100000\n"}, "0::/")
    assert cgroup_cpu_quota(root, proc) is None
    assert cgroup_cpu_quota(root, tmp_path / "missing") is None


@pytest.mark.parametrize(("cpus", "slots", "configured", "share", "over"), [
    (2.0, 2, 0, 1, False),
    (8.0, 2, 0, 4, False),
    (1.5, 1, 0, 1, False),
    (2.0, 4, 0, 1, True),    # more slots than CPUs: still one thread each, and reported
    (4.0, 2, 3, 3, True),    # the operator's count wins, and is reported
])
def test_share_per_slot(cpus: float, slots: int, configured: int, share: int,
                        over: bool) -> None:
    budget = cpu_budget(slots, configured, cpus=cpus)
    assert budget.threads_per_slot == share
    assert budget.configured is (configured > 0)
    assert budget.oversubscribed is over


def run_cli(*args: str, cpus: str | None = None) -> subprocess.CompletedProcess[str]:
    """A real `morag-agent` process, pinned to some CPUs with taskset when asked."""
    command = [sys.executable, "-m", "morag_fleet.cli.agent_main", *args]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_show_config_reads_the_processes_affinity(tmp_path: Path) -> None:
    done = run_cli("show-config", "--json", "--max-jobs", "1", "--state-dir", str(tmp_path),
                   cpus="0")
    assert done.returncode == 0, done.stderr
    budget = json.loads(done.stdout)["cpu_budget"]
    assert budget["usable_cpus"] == 1 and budget["threads_per_slot"] == 1
    assert budget["oversubscribed"] is False


def test_check_reports_an_oversubscribing_setting(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"slot_threads: 64\nstate_dir: {tmp_path / 'state'}\n"
                      f"temp_dir: {tmp_path / 'tmp'}\ncontent_types: [web]\n")
    done = run_cli("check", "--offline", "--json", "-c", str(config))
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["cpu budget"]["ok"] is False
    assert "oversubscribed" in checks["cpu budget"]["detail"]
    assert "x 64 thread(s)" in checks["cpu budget"]["detail"]
