"""The content types, log levels and package extras the roles accept come from the project itself:
the release builder reads them from the morag-fleet wheel it ships (its Provides-Extra and
morag_fleet/settings.py), so the roles keep no copy. These tests fail when a copy appears again or
when the project's own sources disagree with each other."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import yaml

from morag_fleet.settings import CONTENT_TYPES, LOG_LEVELS

from .support import REPO

ROLES = REPO / "roles"


def builder():
    spec = importlib.util.spec_from_file_location(
        "wheelhouse", ROLES / "morag_fleet_common/files/wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def pyproject_extras() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def test_builder_reads_the_lists_from_the_project_wheel(tmp_path: Path) -> None:
    module = builder()
    wheel = module.build_wheel(REPO, tmp_path, [])
    lists = module.project_lists(module.read_wheel(wheel))
    assert lists["content_types"] == list(CONTENT_TYPES)
    assert lists["log_levels"] == list(LOG_LEVELS)
    assert set(lists["extras"]) == pyproject_extras()


def test_every_content_type_has_its_extra() -> None:
    """The agent role installs one extra per content type it serves, by default."""
    assert set(CONTENT_TYPES) <= pyproject_extras()


def test_the_agent_roles_default_serves_every_content_type() -> None:
    defaults = yaml.safe_load((ROLES / "morag_agent/defaults/main.yml").read_text())
    assert defaults["morag_agent_content_types"] == list(CONTENT_TYPES)


def test_roles_keep_no_copy_of_the_lists() -> None:
    for path in ROLES.glob("*/vars/main.yml"):
        values = yaml.safe_load(path.read_text()) or {}
        for name, value in values.items():
            if isinstance(value, list):
                assert not set(value) & (set(CONTENT_TYPES) | set(LOG_LEVELS)
                                         | pyproject_extras()), f"{path}: {name} copies a list"
