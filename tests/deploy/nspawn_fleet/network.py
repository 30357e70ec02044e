"""The private bridge the test hosts live on; nothing else is reachable from it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from .commands import run
from .errors import HarnessError


class Bridge:
    """A Linux bridge with the control side's address (the first host address of the subnet)."""

    def __init__(self, name: str, subnet: str) -> None:
        self.name = name
        self.network = ipaddress.ip_network(subnet)
        if not self.network.is_private:
            raise HarnessError(f"{subnet} is not a private subnet; test hosts stay private")
        self.address = str(next(self.network.hosts()))

    def host_address(self, index: int) -> str:
        """Address of test host `index` (1-based), counted from .11 to keep clear of the bridge."""
        return str(self.network.network_address + 10 + index)

    @property
    def exists(self) -> bool:
        return Path(f"/sys/class/net/{self.name}").exists()

    def create(self) -> None:
        if self.exists:
            self.remove()  # a stale bridge of an earlier, killed run: the name is ours
        run(["ip", "link", "add", self.name, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.address}/{self.network.prefixlen}", "dev", self.name])
        run(["ip", "link", "set", self.name, "up"])

    def remove(self) -> None:
        if self.exists:
            run(["ip", "link", "delete", self.name, "type", "bridge"], check=False)
