"""The agent on a host in bad shape: a full temp disk, a state dir it cannot write.

Real processes on real mounts: a small tmpfs is the full disk (mounting needs root), and the
read-only state dir is a read-only tmpfs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.controller.fleet import ControllerProc
from tests.support.agent_proc import AgentProcess, wait_until
from tests.support.jobserver import JobServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

Mount = Callable[..., Path]


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """`mount_tmpfs(name, size="2m", ro=False)`: a fresh tmpfs, unmounted at the end."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "2m", ro: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        options = f"size={size}" + (",ro" if ro else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True)
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)


def resize(mountpoint: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mountpoint)], check=True)


def statuses(server: JobServer, job_ids: list[str]) -> list[str]:
    return [server.status(job_id)["status"] for job_id in job_ids]


def test_below_the_free_space_floor_nothing_is_claimed_and_status_says_why(
        jobserver: JobServer, make_agent: Callable[..., AgentProcess], make_doc,
        mount_tmpfs: Mount, controller: ControllerProc) -> None:
    small = mount_tmpfs("small-temp")
    ids = [jobserver.create(make_doc(f"d{i}.txt", f"doc {i}\n"), "document") for i in range(3)]
    make_agent(jobserver.url, temp_dir=str(small),
               controller=controller.endpoint, telemetry_plaintext=True, heartbeat_interval=1)

    def paused_for_disk() -> bool:
        row = controller.agent("agent-1")
        return bool(row) and row["state"] == "paused" and row["state_reason"] == "disk full"

    wait_until(paused_for_disk, 30, "the controller to see agent-1 paused: disk full")
    assert "paused: disk full" in controller.cli("status").stdout
    assert statuses(jobserver, ids) == ["pending"] * 3

    resize(small, "400m")  # space is back: above the default floor
    wait_until(lambda: statuses(jobserver, ids) == ["completed"] * 3, 60, "jobs completed")
    wait_until(lambda: controller.agent("agent-1")["state_reason"] is None, 30, "reason cleared")


def test_a_job_that_runs_out_of_space_says_so_and_no_further_job_is_burned(
        jobserver: JobServer, make_agent: Callable[..., AgentProcess], make_doc,
        mount_tmpfs: Mount) -> None:
    small = mount_tmpfs("small-temp")
    big = "plain\n" + "x" * (3 * 2**20) + "\n"  # larger than the whole 2 MB disk
    ids = [jobserver.create(make_doc(f"big{i}.txt", big), "document") for i in range(4)]
    agent = make_agent(jobserver.url, slots=1, temp_dir=str(small),
                       min_free_disk_mb=1)

    wait_until(lambda: "failed" in statuses(jobserver, ids), 30, "the first job to fail")
    agent.wait_for_event("claims_paused", timeout=10, reason="disk full")
    failed = [job_id for job_id in ids if jobserver.status(job_id)["status"] == "failed"]
    assert len(failed) == 1
    assert "No space left on device" in jobserver.result(failed[0])["error_message"]
    wait_until(lambda: agent.find("job_finished"), 10, "the failed job's report")
    time.sleep(5)  # several poll intervals: a paused agent claims nothing in them
    assert sorted(statuses(jobserver, ids)).count("pending") == 3

    resize(small, "200m")
    wait_until(lambda: sorted(statuses(jobserver, ids)) == ["completed"] * 3 + ["failed"], 60,
               "the other jobs completed once space was back")
    assert agent.find("claims_resumed")


def run_agent(state_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "morag_fleet.cli.agent_main", "run", "--state-dir",
         str(state_dir), "--temp-dir", str(tmp_path / "temp"), "--api-url",
         "http://127.0.0.1:9", "--content-types", "document"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_unwritable_state_dir_is_one_clear_line(tmp_path: Path, mount_tmpfs: Mount) -> None:
    read_only = mount_tmpfs("ro-state", size="1m", ro=True)
    a_file = tmp_path / "state-is-a-file"
    a_file.write_text("not a directory")
    for state_dir, says in ((read_only, "is not writable (Read-only file system)"),
                            (a_file, "is not a directory")):
        ran = run_agent(state_dir, tmp_path)
        assert ran.returncode == 1, ran.stderr
        assert "Traceback" not in ran.stderr
        lines = ran.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: state_dir"), ran.stderr
        assert str(state_dir) in lines[0] and says in lines[0]
