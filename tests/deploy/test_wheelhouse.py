"""The control node's release builder (roles/morag_fleet_common/files/wheelhouse.py) on wheels made
here: it resolves along the lock for each host's own Python, refuses a host that cannot install a
wheel before anything is copied, and gives each host a release made of its own wheels only.

Runs offline (a pre-built wheelhouse), so it needs neither PyPI nor test hosts."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from .support import REPO

BUILDER = REPO / "roles/morag_fleet_common/files/wheelhouse.py"
SERIES = "cp311-x86_64"


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (),
               requires_python: str = "", extras: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Provides-Extra: {e}" for e in extras]
    lines += [f"Requires-Dist: {r}" for r in requires]
    lines += [f"Requires-Python: {requires_python}"] if requires_python else []
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
        wheel.writestr(f"{name}/__init__.py", "")
    return path


def wheelhouse(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose `audio` extra needs a package for Python >= 3.11.5, and whose base needs a
    backport on older Pythons only; a lock pinning them."""
    house = tmp_path / "wheelhouse"
    make_wheel(house / "project", "morag_fleet", "0.1.0",
               ("plain>=1", 'needy>=1; extra == "audio"',
                'backport>=1; python_full_version < "3.11.5"'), extras=("audio",))
    pool = house / "pool" / SERIES
    wheels = [make_wheel(pool, "plain", "1.0"), make_wheel(pool, "backport", "1.0"),
              make_wheel(pool, "needy", "1.0", requires_python=">=3.11.5")]
    lock = tmp_path / "requirements.lock"
    lock.write_text("# pinned\n" + "".join(
        f"{w.name.split('-')[0]}==1.0 \\\n    --hash=sha256:"
        f"{hashlib.sha256(w.read_bytes()).hexdigest()}\n    # via morag-fleet\n"
        for w in wheels))
    return house, lock


def build(house: Path, lock: Path, hosts: dict[str, dict[str, Any]],
          *extra: str) -> subprocess.CompletedProcess:
    spec = {f"{name}/agent": {"host": name, "machine": "x86_64", "glibc": "2.36", **values}
            for name, values in hosts.items()}
    return subprocess.run(
        [sys.executable, str(BUILDER), "--source", str(REPO), "--lock", str(lock), "--dir",
         str(house), "--hosts", "-", "--offline", *extra], input=json.dumps(spec),
        capture_output=True, text=True, timeout=120, check=False)


def releases(done: subprocess.CompletedProcess) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["releases"]


def archived(entry: dict[str, Any]) -> set[str]:
    import tarfile
    with tarfile.open(entry["archive"]) as tar:
        return {n.split("-")[0] for n in tar.getnames() if n.endswith(".whl")}


def test_host_python_too_old_stops_before_anything_is_packed(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    done = build(house, lock, {"old": {"python": "3.11.2", "extras": ["audio"]},
                               "new": {"python": "3.11.7", "extras": ["audio"]}})
    assert done.returncode == 1
    assert "nothing was copied to any host" in done.stderr
    assert f"The control node runs Python {platform.python_version()}" in done.stderr
    assert "old (Python 3.11.2): needy 1.0 requires Python >=3.11.5" in done.stderr
    assert "new (Python" not in done.stderr  # only the host that cannot install it is named
    assert not (house / "releases").exists()


def test_markers_are_evaluated_for_each_hosts_python(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    built = releases(build(house, lock, {"old": {"python": "3.11.2", "extras": []},
                                         "new": {"python": "3.11.7", "extras": ["audio"]}}))
    assert archived(built["old/agent"]) == {"morag_fleet", "plain", "backport"}
    assert archived(built["new/agent"]) == {"morag_fleet", "plain", "needy"}


def test_a_hosts_release_depends_only_on_what_it_installs(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    fleet = {"a": {"python": "3.11.7", "extras": []},
             "b": {"python": "3.11.7", "extras": ["audio"]}}
    together = releases(build(house, lock, fleet))
    alone = releases(build(house, lock, {"a": fleet["a"]}))
    assert alone["a/agent"]["release"] == together["a/agent"]["release"]
    assert together["b/agent"]["release"] != together["a/agent"]["release"]
    # the host without the extra neither receives nor installs its wheels
    assert "needy" not in archived(together["a/agent"])
    assert together["a/agent"]["requirement"] == "morag-fleet"
    assert together["b/agent"]["requirement"] == "morag-fleet[audio]"


def test_pre_built_wheelhouse_missing_a_pin_names_it(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    (house / "pool" / SERIES / "needy-1.0-py3-none-any.whl").unlink()
    done = build(house, lock, {"a": {"python": "3.11.7", "extras": ["audio"]}})
    assert done.returncode == 1
    assert "lacks needy==1.0" in done.stderr


def test_unknown_extra_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    done = build(house, lock, {"a": {"python": "3.11.7", "extras": ["audio", "vidoe"]}})
    assert done.returncode == 1
    assert "a: unknown extras vidoe; morag-fleet 0.1.0 has audio" in done.stderr


def test_old_release_archives_are_dropped_from_the_control_node(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    first = releases(build(house, lock, {"a": {"python": "3.11.7", "extras": []}},
                          "--keep-releases", "1"))["a/agent"]["release"]
    done = build(house, lock, {"a": {"python": "3.11.7", "extras": ["audio"]}},
                 "--keep-releases", "1")
    second = releases(done)["a/agent"]["release"]
    assert json.loads(done.stdout)["dropped"] == [first]
    assert sorted(p.name for p in (house / "releases").iterdir()) == [second]


def test_a_python_the_project_does_not_support_is_refused_first(tmp_path: Path) -> None:
    house, lock = wheelhouse(tmp_path)
    project = next((house / "project").glob("*.whl"))
    project.unlink()
    make_wheel(house / "project", "morag_fleet", "0.1.0", ("plain>=1",),
               requires_python=">=3.11")
    done = build(house, lock, {"jammy": {"python": "3.10.12", "extras": []}})
    assert done.returncode == 1
    assert "jammy (Python 3.10.12): morag-fleet 0.1.0 requires Python >=3.11" in done.stderr
