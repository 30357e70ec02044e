"""One test host: an overlay over the shared root, booted with systemd-nspawn on the bridge.

Each container starts from a shell that first moves itself into its own cgroup: without that all
containers share one cgroup and systemd inside them misbehaves.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import time
import uuid
from pathlib import Path

from .commands import run
from .errors import HarnessError

CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
REBOOT_EXIT_CODE = 133  # what systemd-nspawn returns when the container asked to reboot


class Host:
    def __init__(self, name: str, address: str, prefixlen: int, gateway: str, lower: Path,
                 run_dir: Path, bridge: str, apt_proxy_url: str) -> None:
        self.name, self.address, self.prefixlen, self.gateway = name, address, prefixlen, gateway
        self.lower, self.bridge, self.apt_proxy_url = lower, bridge, apt_proxy_url
        self.dir = run_dir / name
        self.merged = self.dir / "merged"
        self.process: subprocess.Popen[bytes] | None = None
        self.boots = 0

    # -- file system -------------------------------------------------------------------------
    def mount(self) -> None:
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.lower},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
             str(self.merged)])
        self._write_identity()

    def _write_identity(self) -> None:
        etc = self.merged / "etc"
        (etc / "hostname").write_text(self.name + "\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{self.address} {self.name}\n")
        (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
        (etc / "systemd/network/10-host0.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={self.address}/{self.prefixlen}\n"
            f"Gateway={self.gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        (etc / "apt/apt.conf.d/01proxy").write_text(
            f'Acquire::http::Proxy "{self.apt_proxy_url}";\n')
        # Like a host installed a while ago: apt's lists count as stale, so a role's
        # `update_cache` with `cache_valid_time` refreshes them through the proxy.
        os.utime(self.merged / "var/lib/apt/lists", (0, 0))
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name,
             "-f", str(etc / "ssh/ssh_host_ed25519_key")])

    def unmount(self) -> None:
        if os.path.ismount(self.merged):
            run(["umount", str(self.merged)], check=False)
            if os.path.ismount(self.merged):
                run(["umount", "-l", str(self.merged)], check=False)

    # -- cgroups -----------------------------------------------------------------------------
    def _cgroups(self) -> list[Path]:
        return [root / f"morag-test-{self.name}" for root in CGROUP_HIERARCHIES if root.is_dir()]

    def kill_leftovers(self) -> None:
        """SIGKILL whatever is still in the host's cgroups (after a hung or killed nspawn)."""
        for top in self._cgroups():
            for procs in top.rglob("cgroup.procs") if top.exists() else ():
                with contextlib.suppress(FileNotFoundError):  # the cgroup went away meanwhile
                    pids = procs.read_text().split()
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), 9)

    def remove_cgroups(self) -> None:
        """Bottom-up rmdir: cgroupfs removes only empty directories (their files go with them)."""
        for top in self._cgroups():
            if not top.exists():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    # -- boot and stop -----------------------------------------------------------------------
    def boot(self, deadline_s: float = 120.0) -> None:
        self.remove_cgroups()
        moves = "".join(f"mkdir -p {c} && echo $$ > {c}/cgroup.procs && " for c in self._cgroups())
        nspawn = ["systemd-nspawn", "--quiet", "-b", "-D", str(self.merged), "-M", self.name,
                  "--register=no", "--keep-unit", f"--network-bridge={self.bridge}",
                  "--resolv-conf=off", "--timezone=off", "--link-journal=no",
                  "--console=read-only"]
        log = open(self.dir / f"console-{self.boots}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(["sh", "-c", moves + "exec " + shlex.join(nspawn)],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self.boots += 1
        self.wait_running(deadline_s)

    @property
    def leader(self) -> int | None:
        """PID (on this machine) of the container's systemd, the child of systemd-nspawn."""
        if self.process is None or self.process.poll() is not None:
            return None
        for child in _children(self.process.pid):
            if _comm(child) == "systemd":
                return child
        return None

    def nsenter(self, *argv: str, check: bool = False,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        leader = self.leader
        if leader is None:
            raise HarnessError(f"host {self.name} is not running")
        return run(["nsenter", "-t", str(leader), "-a", *argv], check=check, timeout=timeout)

    def wait_running(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        state = "not started"
        while time.monotonic() < end:
            if self.process is None or self.process.poll() is not None:
                raise HarnessError(f"host {self.name} exited while booting; see {self.dir}")
            if self.leader is not None:
                state = self.nsenter("systemctl", "is-system-running").stdout.strip()
                if state in ("running", "degraded") and self._sshd_listens():
                    if state == "degraded":
                        failed = self.nsenter("systemctl", "--failed", "--no-legend").stdout
                        print(f"[harness] {self.name} booted degraded: {failed.strip()}")
                    return
            time.sleep(0.3)
        raise HarnessError(f"host {self.name} not ready within {deadline_s}s (state {state!r})")

    def _sshd_listens(self) -> bool:
        try:
            socket.create_connection((self.address, 22), timeout=1).close()
            return True
        except OSError:
            return False

    def wait_exit(self, deadline_s: float) -> int:
        if self.process is None:
            return 0
        try:
            return self.process.wait(deadline_s)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"host {self.name} did not stop within {deadline_s}s") from None

    def reboot_and_wait(self, deadline_s: float = 180.0) -> None:
        """Reboot from inside (systemd's own reboot); nspawn exits 133, and we boot it again the
        way a machine's firmware would."""
        self.nsenter("systemctl", "reboot")
        code = self.wait_exit(deadline_s)
        if code != REBOOT_EXIT_CODE:
            raise HarnessError(f"host {self.name} exited with {code} instead of rebooting")
        self.boot(deadline_s)

    def stop(self, deadline_s: float = 30.0) -> None:
        """Clean shutdown (SIGTERM to nspawn powers the container off), SIGKILL if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(deadline_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        self.kill_leftovers()
        time.sleep(0.2)
        self.unmount()
        self.remove_cgroups()


def _children(pid: int) -> list[int]:
    """Children of `pid`; nspawn forks short-lived helpers while booting, so any may vanish."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _comm(pid: int) -> str | None:
    """The process's command name, or None once it has exited (reading then raises ESRCH)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
