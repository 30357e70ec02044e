"""The host's usable CPUs and each slot's share of them.

Native libraries pick their own thread counts from what they see (`os.cpu_count()`, OpenMP's
environment), and several slots each doing that oversubscribe the host. Worse, a thread count that
disagrees with an OpenMP limit set in the environment made CTranslate2 decode garbage. So the agent
decides once: the cores it may really use (affinity and cgroup quota, as systemd's `CPUQuota=` and
containers set them) shared among its slots, and every converter gets that number explicitly.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on (taskset, systemd `CPUAffinity=`)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
                     ) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2 `cpu.max`, v1 `cfs_quota_us`),
    or None when unlimited or unreadable. The closest limit up the tree wins."""
    for directory in _cgroup_dirs(root, proc_cgroup):
        quota = _read_quota(directory)
        if quota is not None:
            return quota
    return None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup directories, innermost first, for v2 and the v1 cpu controller."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found: list[Path] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":
            base = root
        elif "cpu" in controllers.split(","):
            base = root / controllers if (root / controllers).is_dir() else root / "cpu"
        else:
            continue
        path = base / rel.lstrip("/")
        while True:
            found.append(path)
            if path == base:
                break
            path = path.parent
    return found


def _read_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus() -> float:
    """CPUs this process can really use: its affinity, capped by its cgroup's quota."""
    cpus: float = affinity_cpus()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, quota)
    return max(cpus, 1.0)


@dataclass(frozen=True)
class CpuBudget:
    """What `show-config` and `check` print, and what each slot's converters are given."""

    usable_cpus: float
    slots: int
    threads_per_slot: int
    configured: bool  # the operator set slot_threads; otherwise it is the fair share

    @property
    def threads_wanted(self) -> int:
        return self.slots * self.threads_per_slot

    @property
    def oversubscribed(self) -> bool:
        return self.threads_wanted > math.ceil(self.usable_cpus)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "threads_wanted": self.threads_wanted,
                "oversubscribed": self.oversubscribed}


def cpu_budget(slots: int, slot_threads: int = 0, cpus: float | None = None) -> CpuBudget:
    """Each slot's threads: the operator's `slot_threads`, else usable CPUs / slots (at least 1)."""
    usable = usable_cpus() if cpus is None else cpus
    if slot_threads > 0:
        return CpuBudget(round(usable, 2), slots, slot_threads, True)
    share = max(1, int(usable // max(slots, 1)))
    return CpuBudget(round(usable, 2), slots, share, False)


def default_threads() -> int:
    """For a converter used outside a slot (tests, scripts): the whole host, as one slot."""
    return cpu_budget(1).threads_per_slot
