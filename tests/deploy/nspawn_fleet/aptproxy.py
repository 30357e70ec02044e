"""apt-cacher-ng on the bridge address, so hosts without a route out can still use apt.

Its package does not start it for us (and the system instance may be stopped), so the harness runs
a private instance in the foreground with its own config; the cache directory is kept between runs.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from .errors import HarnessError
from .mirrors import Mirrors

ACNG = "/usr/sbin/apt-cacher-ng"


class AptProxy:
    def __init__(self, address: str, port: int, mirrors: Mirrors, cache_dir: Path,
                 run_dir: Path) -> None:
        self.address, self.port, self.mirrors = address, port, mirrors
        self.cache_dir, self.run_dir = cache_dir, run_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def _write_config(self) -> Path:
        conf = self.run_dir / "acng"
        for sub in ("", "log"):
            (conf / sub).mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        (conf / "backends_debian").write_text(self.mirrors.archive + "/\n")
        lines = [
            f"CacheDir: {self.cache_dir}",
            f"LogDir: {conf / 'log'}",
            "SupportDir: /usr/lib/apt-cacher-ng",
            f"Port: {self.port}",
            f"BindAddress: {self.address}",
            f"SocketPath: {conf / 'socket'}",
            f"PidFile: {conf / 'pid'}",
            "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian",
            "Remap-secdeb: security.debian.org deb.debian.org/debian-security /debian-security",
            "ExThreshold: 4",
            "ForeGround: 1",
            "PassThroughPattern: ^$",  # no CONNECT tunnels: plain http through the cache only
        ]
        (conf / "acng.conf").write_text("\n".join(lines) + "\n")
        return conf

    def start(self, deadline_s: float = 30.0) -> None:
        if not Path(ACNG).exists():
            raise HarnessError("apt-cacher-ng is not installed; run `bash .ci/bootstrap`")
        conf = self._write_config()
        log = open(conf / "log" / "stdout.log", "wb")  # noqa: SIM115 - lives as long as the proxy
        self.process = subprocess.Popen([ACNG, "-c", str(conf)], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise HarnessError(f"apt-cacher-ng exited ({self.process.returncode}); see "
                                   f"{conf / 'log'}")
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise HarnessError(f"apt-cacher-ng did not listen on {self.url} within {deadline_s}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
