"""Each role's README carries a variables table generated from its meta/argument_specs.yml (the
specs ansible-playbook validates against); this fails when a table is out of date."""

from __future__ import annotations

import subprocess
import sys

from .support import REPO


def test_role_readme_tables_are_current() -> None:
    done = subprocess.run([sys.executable, str(REPO / "ansible/tools/role_docs.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_role_has_a_readme_with_its_variables() -> None:
    for role in (REPO / "roles").iterdir():
        if (role / "meta/argument_specs.yml").exists():
            text = (role / "README.md").read_text()
            assert "## Variables" in text and "generated from meta/argument_specs.yml" in text
