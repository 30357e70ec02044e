"""`morag-agent check`: the exit code is the verdict and each line says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from tests.support.agent_proc import REPO_ROOT


def check(tmp_path: Path, **settings) -> subprocess.CompletedProcess[str]:
    config = {"state_dir": str(tmp_path / "state"), "temp_dir": str(tmp_path / "tmp"),
              "content_types": ["document"], **settings}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "morag_fleet.cli.agent_main", "check",
                           "--config", str(path), "--json"], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)


def by_name(out: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(out.stdout)["checks"]}


def test_healthy_host_exits_zero(tmp_path: Path, jobserver) -> None:
    out = check(tmp_path, api_base_url=jobserver.url)
    assert out.returncode == 0, out.stdout + out.stderr
    checks = by_name(out)
    assert checks["api"]["ok"] and checks["converter document"]["ok"]


def test_unreachable_api_is_unhealthy_with_reason(tmp_path: Path) -> None:
    out = check(tmp_path, api_base_url="http://127.0.0.1:9", connect_timeout=2)
    assert out.returncode == 1
    api = by_name(out)["api"]
    assert not api["ok"] and "127.0.0.1:9" in api["detail"]


def test_unwritable_state_dir_is_unhealthy(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = check(tmp_path, api_base_url="http://127.0.0.1:9", state_dir=str(blocker / "state"))
    assert out.returncode == 1
    assert not by_name(out)["state_dir"]["ok"]


def test_configured_gpu_missing_is_unhealthy(tmp_path: Path, jobserver) -> None:
    out = check(tmp_path, api_base_url=jobserver.url, gpus=["0"])
    assert out.returncode == 1
    assert "not found" in by_name(out)["gpu"]["detail"]
