"""agent/requirements.lock against pyproject.toml.

Bootstrap installs only what the lock pins, so a requirement added to pyproject (or a raised lower
bound) without `make lock` would go untested; these tests catch that offline. The packages that
the extras of a dependency pull in (e.g. markitdown[docx]) need the registry to know and are left
to the resolver."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "agent" / "requirements.lock"
# The hosts the lock is resolved for (see `make lock`): Linux x86_64, Python 3.11 from 3.11.0 on.
TARGET = {
    "python_version": "3.11", "python_full_version": "3.11.0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "os_name": "posix", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "extra": "",
}


def locked_lines(text: str) -> list[tuple[Requirement, list[str]]]:
    """The lock's requirements with their hashes: comments dropped, `\\` continuations joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    entries = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("-"):
            continue
        requirement, *hashes = re.split(r"\s+--hash=", line.strip())
        entries.append((Requirement(requirement), hashes))
    return entries


def declared(project: dict) -> tuple[list[Requirement], list[str]]:
    """Every requirement of `dependencies` and of all extras, the project's own `name[extra]`
    entries replaced by those extras' requirements; plus the extras named but not declared."""
    name = canonicalize_name(project["name"])
    extras = project.get("optional-dependencies", {})
    found: list[Requirement] = []
    unknown: list[str] = []
    pending = [Requirement(r) for r in project.get("dependencies", [])]
    pending += [Requirement(r) for group in extras.values() for r in group]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        if canonicalize_name(requirement.name) != name:
            found.append(requirement)
            continue
        for extra in sorted(requirement.extras - seen):
            seen.add(extra)
            if extra not in extras:
                unknown.append(extra)
            pending += [Requirement(r) for r in extras.get(extra, [])]
    return found, unknown


def lock_problems(pyproject: Path, lock: Path) -> list[str]:
    """What keeps the lock from matching pyproject: a requirement not pinned, pinned at a version
    its specifier excludes, or pinned twice; a pin that is not `==` or carries no hash. The build
    system's requirements count too: bootstrap builds the project from the lock alone."""
    data = tomllib.loads(pyproject.read_text())
    requirements, unknown = declared(data["project"])
    requirements += [Requirement(r) for r in data.get("build-system", {}).get("requires", [])]
    problems = [f"extra {extra!r} is named but not declared" for extra in unknown]
    pins: dict[str, list[Version]] = {}
    for entry, hashes in locked_lines(lock.read_text()):
        specs = list(entry.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            problems.append(f"{entry}: not pinned with ==")
            continue
        if not hashes:
            problems.append(f"{entry}: no --hash")
        if entry.marker is None or entry.marker.evaluate(TARGET):
            pins.setdefault(canonicalize_name(entry.name), []).append(Version(specs[0].version))
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        versions = pins.get(canonicalize_name(requirement.name), [])
        if len(versions) != 1:
            problems.append(f"{requirement}: pinned {len(versions)} times in the lock")
        elif not requirement.specifier.contains(versions[0], prereleases=True):
            problems.append(f"{requirement}: the lock pins {versions[0]}")
    return sorted(set(problems))


def test_lock_matches_pyproject() -> None:
    assert lock_problems(PYPROJECT, LOCK) == [], "pyproject.toml changed: run `make lock`"


def test_lock_check_reports_a_mismatch(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = PYPROJECT.read_text()
    assert '"requests>=2.31",' in text
    pyproject.write_text(text.replace(
        '"requests>=2.31",', '"requests>=99",\n    "not-in-the-lock>=1.0",', 1))
    lock = tmp_path / "requirements.lock"
    # pyyaml's pin without its hashes
    lock.write_text(re.sub(r"(?m)^(pyyaml==\S+) \\\n(    --hash=\S+(?: \\)?\n)+", r"\1\n",
                           LOCK.read_text()))

    problems = lock_problems(pyproject, lock)

    assert len(problems) == 3, problems
    assert problems[0].startswith("not-in-the-lock>=1.0: pinned 0 times")
    assert problems[1].startswith("pyyaml==") and problems[1].endswith(": no --hash")
    assert problems[2].startswith("requests>=99: the lock pins ")
