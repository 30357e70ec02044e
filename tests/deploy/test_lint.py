"""The roles and playbooks pass ansible-lint's strictest profile (production)."""

from __future__ import annotations

import os
import subprocess

from .support import REPO, VENV_BIN


def test_ansible_lint_production_profile_passes() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--nocolor"],  # settings in .ansible-lint
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**{k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"},
             "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
