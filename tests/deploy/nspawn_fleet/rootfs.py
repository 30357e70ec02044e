"""One Debian root file system for every test host, built once with debootstrap and cached as a
tarball: extracting it takes seconds, debootstrap a minute."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .commands import run
from .mirrors import Mirrors

SUITE = "bookworm"
# What Ansible, the apt/pip modules and testinfra need on a host; no python3-venv on purpose
# (the roles must install it, as they would on a fresh real host).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "python3-packaging",
            "openssh-server", "iproute2", "sudo", "ca-certificates")
# Bumped when `_prepare` changes, so an old cached tarball is not reused.
PREPARE_VERSION = "3"
# Timers that would take the dpkg lock in the middle of a deployment.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service",
                "apt-daily-upgrade.service", "e2scrub_all.timer", "fstrim.timer")


def ssh_key(cache_dir: Path) -> Path:
    """The key the control side logs in with (root on every host)."""
    key = cache_dir / "id_ed25519"
    if not key.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "morag-fleet-tests",
             "-f", str(key)])
    return key


def tarball_path(cache_dir: Path, mirrors: Mirrors) -> Path:
    key = "|".join([SUITE, mirrors.archive, str(mirrors.security), *PACKAGES, PREPARE_VERSION,
                    (cache_dir / "id_ed25519.pub").read_text()])
    return cache_dir / f"rootfs-{SUITE}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.tar"


def ensure_tarball(cache_dir: Path, mirrors: Mirrors) -> Path:
    """The cached root tarball, built first when missing."""
    key = ssh_key(cache_dir)
    tarball = tarball_path(cache_dir, mirrors)
    if tarball.exists():
        return tarball
    build = Path(tempfile.mkdtemp(prefix="rootfs-build-", dir=cache_dir))
    try:
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
             SUITE, str(build), mirrors.archive], timeout=1800)
        _prepare(build, key.with_suffix(".pub").read_text(), mirrors)
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "--xattrs", "-cpf", str(partial), "-C", str(build), "."])
        partial.rename(tarball)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    for old in cache_dir.glob(f"rootfs-{SUITE}-*.tar"):
        if old != tarball:
            old.unlink()
    return tarball


def _prepare(root: Path, public_key: str, mirrors: Mirrors) -> None:
    """Make the root bootable as many hosts: per-host identity is written later, per overlay."""
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    run(["chroot", str(root), "systemctl", "enable", "systemd-networkd"])
    run(["chroot", str(root), "systemctl", "mask", *MASKED_UNITS])
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").unlink(missing_ok=True)
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text("nameserver 127.0.0.1\n")
    for host_key in (root / "etc/ssh").glob("ssh_host_*"):
        host_key.unlink()
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(_sources(mirrors))
    (root / "etc/apt/apt.conf.d/90morag-tests").write_text(
        'APT::Install-Recommends "false";\nAcquire::Retries "3";\n')
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _sources(mirrors: Mirrors) -> str:
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    text = (f"Types: deb\nURIs: {mirrors.archive}\nSuites: {SUITE} {SUITE}-updates\n"
            f"Components: main\nSigned-By: {keyring}\n")
    if mirrors.security:
        text += (f"\nTypes: deb\nURIs: {mirrors.security}\nSuites: {SUITE}-security\n"
                 f"Components: main\nSigned-By: {keyring}\n")
    return text
