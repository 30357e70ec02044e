"""A set of booted test hosts plus what the control side needs to reach them (inventory, SSH
config, apt proxy). Use as a context manager: everything is torn down on exit, also on failure."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import rootfs
from .aptproxy import AptProxy
from .commands import require_tools, run
from .errors import HarnessError, require_root
from .host import Host
from .mirrors import find_mirrors
from .network import Bridge

DEFAULT_CACHE = Path("/var/cache/morag-fleet-tests")


class Fleet:
    """Hosts named by `groups` ({group: [host names]}), booted on `subnet`."""

    def __init__(self, groups: dict[str, list[str]], cache_dir: Path = DEFAULT_CACHE,
                 subnet: str = "10.77.0.0/24", bridge: str = "mfleet0",
                 proxy_port: int = 3142) -> None:
        self.groups = groups
        self.cache_dir = cache_dir
        self.bridge = Bridge(bridge, subnet)
        self.proxy_port = proxy_port
        self.hosts: dict[str, Host] = {}
        self.run_dir = Path()
        self.proxy: AptProxy | None = None
        self._stack = contextlib.ExitStack()

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Fleet:
        require_root()
        require_tools("debootstrap", "systemd-nspawn", "nsenter", "ip", "ssh", "ssh-keygen", "tar")
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        mirrors = find_mirrors()
        started = time.monotonic()
        tarball = rootfs.ensure_tarball(self.cache_dir, mirrors)
        self.ssh_key = rootfs.ssh_key(self.cache_dir)
        self.run_dir = Path(tempfile.mkdtemp(prefix="morag-fleet-hosts-", dir="/var/tmp"))
        self._stack.callback(shutil.rmtree, self.run_dir, ignore_errors=True)
        lower = self.run_dir / "lower"
        lower.mkdir()
        run(["tar", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(lower)])
        self._stack.callback(self.bridge.remove)
        self.bridge.create()
        self.proxy = AptProxy(self.bridge.address, self.proxy_port, mirrors,
                              self.cache_dir / "apt-cacher-ng", self.run_dir)
        self._stack.callback(self.proxy.stop)
        self.proxy.start()
        names = sorted({name for members in self.groups.values() for name in members})
        for index, name in enumerate(names, start=1):
            host = Host(name, self.bridge.host_address(index), self.bridge.network.prefixlen,
                        self.bridge.address, lower, self.run_dir, self.bridge.name,
                        self.proxy.url)
            self._stack.callback(host.cleanup)
            self.hosts[name] = host
            host.mount()
        self._stack.callback(self._stop_all)
        for host in self.hosts.values():
            host.boot()
        self.ssh_config = self._write_ssh_config()
        self.inventory = self._write_inventory()
        print(f"[harness] {len(self.hosts)} hosts up in {time.monotonic() - started:.1f}s "
              f"({self.run_dir})")

    def _stop_all(self) -> None:
        """Shut every host down at once (each one's cleanup then only waits for its own)."""
        for host in self.hosts.values():
            if host.process is not None and host.process.poll() is None:
                host.process.terminate()

    # -- control-side files ------------------------------------------------------------------
    def _write_ssh_config(self) -> Path:
        lines = []
        for host in self.hosts.values():
            lines += [f"Host {host.name} {host.address}", f"  HostName {host.address}"]
        lines += ["Host *", "  User root", f"  IdentityFile {self.ssh_key}",
                  "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
                  "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", "  ControlMaster auto",
                  f"  ControlPath {self.run_dir}/ssh-%C", "  ControlPersist 120s",
                  "  ConnectTimeout 10"]
        path = self.run_dir / "ssh_config"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _write_inventory(self) -> Path:
        lines = []
        for group, members in self.groups.items():
            lines.append(f"[{group}]")
            lines += [f"{name} ansible_host={self.hosts[name].address}" for name in members]
            lines.append("")
        lines += ["[all:vars]", "ansible_user=root",
                  f"ansible_ssh_private_key_file={self.ssh_key}",
                  f"ansible_ssh_common_args='-F {self.ssh_config}'", ""]
        path = self.run_dir / "inventory.ini"
        path.write_text("\n".join(lines))
        return path

    # -- helpers for tests -------------------------------------------------------------------
    def ssh(self, name: str, command: str, check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return run(["ssh", "-F", str(self.ssh_config), name, command], check=check,
                   timeout=timeout)

    def testinfra_hosts(self, names: list[str]) -> list[str]:
        return [f"ssh://{name}" for name in names]

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise HarnessError(f"no test host {name!r}") from None
