#!/usr/bin/env python3
"""Per-host releases of morag-fleet, built on the control node from the project's lock.

Why this exists: a fleet host installs offline (`pip install --no-index`) from wheels the control
node brings. Those wheels must fit the host's Python, not the control node's, and each host should
receive and install only what its own extras need. So this script:

1. builds the morag-fleet wheel from the checkout;
2. walks each host's dependencies from the wheel's metadata, pinned by agent/requirements.lock and
   with environment markers evaluated for that host, and downloads the pinned files (hash-checked)
   for the oldest Python of the hosts that share a Python series and architecture;
3. refuses, before anything reaches a host, any wheel whose Requires-Python or platform tags the
   host cannot use, naming the host's Python and the control node's;
4. packs one archive per distinct set of wheels. Its release id hashes only those wheels and the
   extras, so a host's release changes only when what it installs changes.

Input: a JSON file {key: {"host", "extras", "python", "machine", "glibc"}} (one key per role on a
host). Output (stdout): JSON with each key's release, archive and requirement. Exit status 1 with
a readable message when a host cannot install its release.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

PROJECT = "morag-fleet"
# Reproducible wheels and archives: the same sources give the same bytes, hence the same release.
EPOCH = 315532800
LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


class WheelhouseError(Exception):
    """A problem the operator must fix; its text is the whole message."""


# -- the lock -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]

    def requirement_line(self) -> str:
        return f"{self.name}=={self.version} " + " ".join(f"--hash={h}" for h in self.hashes)


def read_lock(path: Path) -> dict[str, Pin]:
    """Pins of the lock by canonical name: `name==version` followed by its --hash lines."""
    pins: dict[str, Pin] = {}
    current: tuple[str, str] | None = None
    hashes: list[str] = []
    for line in [*path.read_text().splitlines(), ""]:
        match = LOCK_LINE.match(line)
        if (match or not line.startswith(" ")) and current:
            pins[canonicalize_name(current[0])] = Pin(current[0], current[1], tuple(hashes))
            current, hashes = None, []
        if match:
            current = (match[1], match[2])
        hashes += HASH.findall(line)
    return pins


# -- hosts and targets --------------------------------------------------------------------------
@dataclass(frozen=True)
class Host:
    key: str
    name: str
    extras: tuple[str, ...]
    python: Version
    machine: str
    glibc: tuple[int, int]

    @property
    def series(self) -> str:
        return f"cp{self.python.major}{self.python.minor}-{self.machine}"

    def platforms(self) -> list[str]:
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, -1, -1)]
        for legacy, needs in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
            if major == 2 and minor >= needs:
                tags.append(f"{legacy}_{self.machine}")
        return [*tags, f"linux_{self.machine}"]

    def tags(self) -> set[Tag]:
        version = (self.python.major, self.python.minor)
        interpreter = f"cp{version[0]}{version[1]}"
        return {*cpython_tags(version, [interpreter], self.platforms()),
                *compatible_tags(version, interpreter, self.platforms())}

    def environment(self) -> dict[str, str]:
        """Marker variables as this host's interpreter would report them."""
        return {"python_version": f"{self.python.major}.{self.python.minor}",
                "python_full_version": str(self.python), "implementation_name": "cpython",
                "implementation_version": str(self.python),
                "platform_python_implementation": "CPython", "platform_machine": self.machine,
                "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
                "platform_release": "", "platform_version": ""}


def read_hosts(text: str) -> list[Host]:
    hosts = []
    for key, spec in sorted(json.loads(text).items()):
        glibc = tuple(int(p) for p in str(spec.get("glibc") or "2.17").split(".")[:2])
        hosts.append(Host(key, spec.get("host", key), tuple(sorted(set(spec["extras"]))),
                          Version(spec["python"]), spec.get("machine", "x86_64"),
                          (glibc[0], glibc[1])))
    return hosts


def oldest(hosts: list[Host]) -> Host:
    """The stand-in for a group: its oldest Python and oldest C library, all extras."""
    extras = sorted({e for h in hosts for e in h.extras})
    return Host(hosts[0].series, hosts[0].series, tuple(extras), min(h.python for h in hosts),
                hosts[0].machine, min(h.glibc for h in hosts))


# -- distributions on disk ----------------------------------------------------------------------
@dataclass
class Dist:
    path: Path
    name: str
    version: str
    requires: list[Requirement] = field(default_factory=list)
    requires_python: SpecifierSet = field(default_factory=SpecifierSet)
    tags: frozenset[Tag] = frozenset()
    extras: tuple[str, ...] = ()


def read_wheel(path: Path) -> Dist:
    name, version, _build, tags = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as archive:
        metadata = next(n for n in archive.namelist()
                        if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(archive.read(metadata).decode())
    return Dist(path, canonicalize_name(name), str(version),
                [Requirement(r) for r in message.get_all("Requires-Dist") or []],
                SpecifierSet(message.get("Requires-Python") or ""), frozenset(tags),
                tuple(message.get_all("Provides-Extra") or []))


def project_lists(project: Dist) -> dict[str, list[str]]:
    """What the roles check a host's settings against, read from the wheel being shipped: its
    extras, and the content types and log levels of its settings module. So no role keeps a copy
    that could fall behind the code."""
    with zipfile.ZipFile(project.path) as archive:
        names = archive.namelist()
        source = archive.read("morag_fleet/settings.py").decode() if (
            "morag_fleet/settings.py" in names) else ""
    constants = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("CONTENT_TYPES", "LOG_LEVELS"):
            constants[target.id] = list(ast.literal_eval(node.value))
    return {"extras": sorted(project.extras), "content_types": constants.get("CONTENT_TYPES", []),
            "log_levels": constants.get("LOG_LEVELS", [])}


def wheels_in(folder: Path) -> dict[tuple[str, str], Dist]:
    found = {}
    for path in sorted(folder.glob("*.whl")):
        dist = read_wheel(path)
        found.setdefault((dist.name, dist.version), dist)
    return found


# -- resolution along the lock ------------------------------------------------------------------
def wanted(requirements: Iterable[Requirement], extras: Iterable[str],
           env: dict[str, str]) -> list[Requirement]:
    """The requirements that apply on the host, for the extras asked of their distribution."""
    asked = [*extras, ""]
    return [r for r in requirements
            if r.marker is None or any(r.marker.evaluate({**env, "extra": e}) for e in asked)]


def closure(root: Dist, extras: Iterable[str], host: Host, pins: dict[str, Pin],
            fetch: Callable[[list[Pin]], dict[str, Dist]]) -> list[Dist]:
    """Every distribution the root needs on `host` with these extras, at the lock's versions.
    `fetch(pins)` returns the Dist of each pin (downloading what is missing), once per level."""
    env = host.environment()
    extras = set(extras)
    while True:  # an extra may name the package itself (`all`): expand those first
        more = {e for r in wanted(root.requires, extras, env)
                if canonicalize_name(r.name) == root.name for e in r.extras} - extras
        if not more:
            break
        extras |= more
    chosen: dict[str, Dist] = {}
    asked: dict[str, set[str]] = {}
    level = [r for r in wanted(root.requires, extras, env)
             if canonicalize_name(r.name) != root.name]
    while level:
        grown: set[str] = set()
        for req in level:
            name = canonicalize_name(req.name)
            locked(req, pins)
            if name not in asked or set(req.extras) - asked[name]:
                asked.setdefault(name, set()).update(req.extras)
                grown.add(name)
        chosen.update(fetch([pins[name] for name in sorted(grown) if name not in chosen]))
        level = [r for name in sorted(grown)
                 for r in wanted(chosen[name].requires, asked[name], env)]
    return [chosen[name] for name in sorted(chosen)]


def locked(req: Requirement, pins: dict[str, Pin]) -> Pin:
    """The lock's pin for a requirement; an error naming the fix when the lock does not fit."""
    pin = pins.get(canonicalize_name(req.name))
    if pin is None:
        raise WheelhouseError(f"{req.name} is needed but not in agent/requirements.lock; "
                              "run `make lock`")
    if not req.specifier.contains(pin.version, prereleases=True):
        raise WheelhouseError(f"agent/requirements.lock pins {pin.name}=={pin.version} but "
                              f"{req} is needed; run `make lock`")
    return pin


def problems(host: Host, dists: Iterable[Dist]) -> list[str]:
    """Why `host` could not install these distributions (empty when it can)."""
    supported = host.tags()
    found = []
    for dist in dists:
        if not dist.requires_python.contains(str(host.python), prereleases=True):
            found.append(f"{dist.name} {dist.version} requires Python {dist.requires_python}")
        elif not dist.tags & supported:
            found.append(f"{dist.path.name} does not fit Python {host.python} on "
                         f"{host.machine} with glibc {host.glibc[0]}.{host.glibc[1]}")
    return found


# -- pip ----------------------------------------------------------------------------------------
class Pool:
    """Downloaded and built wheels for one Python series; a cache shared by every build."""

    def __init__(self, folder: Path, target: Host, offline: bool, pip_args: list[str]) -> None:
        self.folder, self.target, self.offline, self.pip_args = folder, target, offline, pip_args
        folder.mkdir(parents=True, exist_ok=True)
        self.dists = wheels_in(folder)

    def fetch(self, pins: list[Pin]) -> dict[str, Dist]:
        missing = [p for p in pins if (canonicalize_name(p.name), p.version) not in self.dists]
        if missing and self.offline:
            raise WheelhouseError(
                f"the pre-built wheelhouse {self.folder} lacks "
                + ", ".join(f"{p.name}=={p.version}" for p in missing)
                + "; build it where PyPI is reachable (morag_fleet_wheelhouse_build: true)")
        if missing:
            self._download(missing)
        found = {}
        for pin in pins:
            key = (canonicalize_name(pin.name), pin.version)
            if key not in self.dists:
                raise WheelhouseError(f"no wheel of {pin.name}=={pin.version} for Python "
                                      f"{self.target.python} on {self.target.machine}")
            found[key[0]] = self.dists[key]
        return found

    def _download(self, pins: list[Pin]) -> None:
        with tempfile.TemporaryDirectory(prefix="wheelhouse-") as scratch:
            requirements = Path(scratch, "requirements.txt")
            requirements.write_text("\n".join(p.requirement_line() for p in pins) + "\n")
            target = self.target
            argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--require-hashes", "--dest", scratch, "--python-version",
                    str(target.python), "--implementation", "cp", "--abi",
                    f"cp{target.python.major}{target.python.minor}",
                    *(a for p in target.platforms() for a in ("--platform", p)),
                    *self.pip_args, "-r", str(requirements)]
            run(argv, f"downloading {len(pins)} pinned packages")
            for sdist in sorted(Path(scratch).glob("*.tar.gz")) + sorted(
                    Path(scratch).glob("*.zip")):
                build_wheel(sdist, Path(scratch), self.pip_args)
                sdist.unlink()
            for wheel in Path(scratch).glob("*.whl"):
                shutil.move(str(wheel), self.folder / wheel.name)
                dist = read_wheel(self.folder / wheel.name)
                self.dists[(dist.name, dist.version)] = dist


def run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH),
                               "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise WheelhouseError(f"{what} failed (pip exit {done.returncode}):\n{tail}")


def build_wheel(source: Path, dest: Path, pip_args: list[str]) -> Path:
    """A wheel from a source tree or sdist (packages published without wheels)."""
    before = set(dest.glob("*.whl"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest),
         *pip_args, str(source)], f"building a wheel of {source.name}")
    built = set(dest.glob("*.whl")) - before
    if len(built) != 1:  # pip leaves an identical wheel in place: find it by name
        name = canonicalize_name(source.name if source.is_dir() else
                                 parse_sdist_filename(source.name)[0])
        built = {w for w in dest.glob("*.whl") if read_wheel(w).name == name}
    return built.pop()


def project_wheel(source: Path, folder: Path, offline: bool, pip_args: list[str]) -> Dist:
    """The checkout's own wheel, rebuilt unless offline; unchanged sources keep the same file."""
    folder.mkdir(parents=True, exist_ok=True)
    if not offline:
        with tempfile.TemporaryDirectory(prefix="wheelhouse-project-") as scratch:
            built = build_wheel(source, Path(scratch), pip_args)
            for old in folder.glob("*.whl"):
                if old.name != built.name or digest(old) != digest(built):
                    old.unlink()
            if not (folder / built.name).exists():
                shutil.move(str(built), folder / built.name)
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise WheelhouseError(f"expected one {PROJECT} wheel in {folder}, found {len(wheels)}")
    return read_wheel(wheels[0])


# -- releases -----------------------------------------------------------------------------------
def digest(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def requirement(extras: Iterable[str]) -> str:
    extras = sorted(set(extras))
    return PROJECT + (f"[{','.join(extras)}]" if extras else "")


def release_id(project: Dist, extras: Iterable[str], dists: list[Dist]) -> str:
    files = sorted(f"{d.path.name} {digest(d.path)}" for d in [project, *dists])
    content = json.dumps([requirement(extras), *files])
    return f"{project.version}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def pack(folder: Path, release: str, files: list[Path], manifest: dict) -> tuple[Path, bool]:
    """releases/<id>/wheels.tar (fixed order, owner and times) and its manifest; False when the
    archive was already there."""
    archive = folder / release / "wheels.tar"
    if archive.exists():
        return archive, False
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(files, key=lambda p: p.name):
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime, info.mode = EPOCH, 0o644
            with path.open("rb") as stream:
                tar.addfile(info, stream)
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo("MANIFEST.json")
        info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
        tar.addfile(info, io.BytesIO(data))
    (archive.parent / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    partial.rename(archive)
    return archive, True


def prune_releases(folder: Path, used: set[str], keep: int) -> list[str]:
    """Drops release archives beyond the `keep` most recently used ones (those of this run always
    stay). An archive is only a cache: the next run that needs it packs it again from the pool."""
    if not folder.is_dir():
        return []
    for release in used:
        os.utime(folder / release)
    known = sorted((p for p in folder.iterdir() if p.is_dir()),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    dropped = [p for p in known[max(keep, len(used)):] if p.name not in used]
    for path in dropped:
        shutil.rmtree(path)
    return [p.name for p in dropped]


def build(args: argparse.Namespace) -> dict:
    wheelhouse = Path(args.dir)
    hosts = read_hosts(sys.stdin.read() if args.hosts == "-" else Path(args.hosts).read_text())
    pins = read_lock(Path(args.lock))
    project = project_wheel(Path(args.source), wheelhouse / "project", args.offline,
                            args.pip_arg)
    control = platform.python_version()
    series: dict[str, list[Host]] = {}
    for host in hosts:
        series.setdefault(host.series, []).append(host)
    plans: dict[str, tuple[Host, list[Dist]]] = {}
    failures: list[str] = []
    for key, members in sorted(series.items()):
        unfit = [h for h in members if problems(h, [project])]
        failures += [f"  {h.name} (Python {h.python}): {p}" for h in unfit
                     for p in problems(h, [project])]
        members = [h for h in members if h not in unfit]
        if not members:  # nothing to download for a Python the project does not run on
            continue
        target = oldest(members)
        pool = Pool(wheelhouse / "pool" / key, target, args.offline, args.pip_arg)
        for host in members:
            unknown = sorted(set(host.extras) - set(project.extras))
            if unknown:
                failures.append(f"  {host.name}: unknown extras {', '.join(unknown)}; "
                                f"{PROJECT} {project.version} has {', '.join(project.extras)}")
                continue
            dists = closure(project, host.extras, host, pins, pool.fetch)
            found = problems(host, [project, *dists])
            failures += [f"  {host.name} (Python {host.python}): {p}" for p in found]
            plans[host.key] = (host, dists)
    if failures:
        raise WheelhouseError(
            f"The wheelhouse does not fit these hosts; nothing was copied to any host.\n"
            f"The control node runs Python {control}; the wheels follow agent/requirements.lock "
            f"for each host's own Python.\n" + "\n".join(failures))
    report: dict = {"control_python": control, "changed": False, "releases": {},
                    "project": {"version": project.version, **project_lists(project)}}
    for key, (host, dists) in sorted(plans.items()):
        release = release_id(project, host.extras, dists)
        manifest = {"release": release, "requirement": requirement(host.extras),
                    "python": str(host.python),
                    "wheels": {d.name: d.version for d in [project, *dists]},
                    "bytes": sum(d.path.stat().st_size for d in [project, *dists])}
        archive, made = pack(wheelhouse / "releases", release,
                             [project.path, *(d.path for d in dists)], manifest)
        report["changed"] |= made
        report["releases"][key] = {"release": release, "archive": str(archive),
                                   "requirement": manifest["requirement"],
                                   "python": str(host.python), "wheels": len(dists) + 1,
                                   "bytes": manifest["bytes"]}
    used = {entry["release"] for entry in report["releases"].values()}
    report["dropped"] = prune_releases(wheelhouse / "releases", used, args.keep_releases)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="the morag-fleet checkout")
    parser.add_argument("--lock", required=True, help="agent/requirements.lock")
    parser.add_argument("--dir", required=True, help="the wheelhouse (a cache, kept between runs)")
    parser.add_argument("--hosts", required=True,
                        help="JSON file (- for stdin): what each host installs")
    parser.add_argument("--offline", action="store_true",
                        help="use only wheels already in the wheelhouse (air-gapped control node)")
    parser.add_argument("--keep-releases", type=int, default=8,
                        help="release archives kept on the control node (this run's always)")
    parser.add_argument("--pip-arg", action="append", default=[],
                        help="extra argument for pip download/wheel (repeat)")
    args = parser.parse_args(argv)
    try:
        report = build(args)
    except WheelhouseError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
