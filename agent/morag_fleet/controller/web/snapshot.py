"""The fleet as the web thread sees it, read from the live state without stopping ingest.

The ingest loop owns `FleetState` and never locks it. Everything here only reads: lists are
copied in one C call (atomic under the GIL), a record's job list is read from whichever of its
two fields holds it (never through `AgentRecord.jobs`, which rebuilds on the main thread), and
a value that changed between two reads is at worst one heartbeat old. A sorted snapshot is
shared by every page and live update for `MAX_AGE_S`, so ten open browsers cost what one does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from morag_fleet.controller import views
from morag_fleet.controller.state import AgentRecord, FleetState

MAX_AGE_S = 1.0  # the live pages' cadence: one snapshot serves every update of a tick
# attention first: the table's first page shows what an operator has to look at
RANK = {"lost": 0, "paused": 1, "draining": 1, "busy": 2, "unknown": 3, "idle": 4,
        "offline": 5}
COUNTED = ("online", "busy", "idle", "draining", "paused", "lost", "offline")


@dataclass(frozen=True)
class Snapshot:
    taken: float
    records: list[AgentRecord]  # attention first, then by name
    counts: dict[str, int]
    slots_used: int
    slots_total: int

    def select(self, state: str = "", query: str = "") -> list[AgentRecord]:
        """Records in a state ('' for all) whose name or host holds `query`."""
        query = query.lower()
        return [r for r in self.records
                if (not state or _bucket(r) == state)
                and (not query or query in r.name.lower() or query in str(r.host).lower())]


def _bucket(record: AgentRecord) -> str:
    """The count a record falls in; an agent paused because it was drained counts as draining."""
    status = record.status
    if status == "paused" and views.state_reason(record) == "drained":
        return "draining"
    return status


class NameOrder:
    """The agents' names sorted, sorted again only when the set of agents changed (the dict's
    keys in insertion order are compared, which costs far less than a sort)."""

    def __init__(self) -> None:
        self._keys: tuple[str, ...] = ()
        self._sorted: list[str] = []

    def names(self, agents: dict[str, AgentRecord]) -> list[str]:
        keys = tuple(agents)
        if keys != self._keys:
            self._keys, self._sorted = keys, sorted(keys)
        return self._sorted


def take(state: FleetState, order: NameOrder | None = None,
         now: float | None = None) -> Snapshot:
    """One pass in name order, each record into its rank's list: no sort per snapshot."""
    agents = state.agents
    ranks: dict[int, list[AgentRecord]] = {}
    counts = dict.fromkeys(COUNTED, 0)
    used = total = 0
    for name in (order or NameOrder()).names(agents):
        record = agents.get(name)
        if record is None:  # forgotten since the names were read
            continue
        online = record.link == "online"
        status = record.state if online else record.link
        bucket = "draining" if status == "paused" and \
            views.state_reason(record) == "drained" else status
        counts[bucket] = counts.get(bucket, 0) + 1
        ranks.setdefault(RANK.get(status, 3), []).append(record)
        if online:
            counts["online"] += 1
            used += record.slots_used if type(record.slots_used) is int else 0
            total += record.slots_total if type(record.slots_total) is int else 0
    records = [record for rank in sorted(ranks) for record in ranks[rank]]
    counts["agents"] = len(records)
    return Snapshot(time.time() if now is None else now, records, counts, used, total)


class SnapshotCache:
    """One snapshot at a time: renewed every second by the dashboard's refresher while pages
    are open, and by a reader only when it finds none fresh enough (the first page)."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self._lock = threading.Lock()  # among web threads only; ingest never takes it
        self._current: Snapshot | None = None
        self._order = NameOrder()

    def get(self, max_age: float = MAX_AGE_S) -> Snapshot:
        current = self._current
        if current is not None and time.time() - current.taken < max_age:
            return current
        with self._lock:
            current = self._current
            if current is None or time.time() - current.taken >= max_age:
                current = self._current = take(self.state, self._order)
        return current

    def renew(self) -> Snapshot:
        with self._lock:
            current = self._current = take(self.state, self._order)
        return current


def running_jobs(record: AgentRecord) -> list[dict[str, Any]]:
    """The record's running jobs, copied, without building anything on the record."""
    if record.link != "online":
        return []
    beat_jobs = record.beat_jobs
    if beat_jobs is not None:
        return [{"job_id": j.job_id, "content_type": j.content_type or "", "phase": j.phase or "",
                 "progress": j.progress, "slot": j.slot, "started_at": j.started_at}
                for j in beat_jobs]
    return [dict(job) for job in list(record.job_map.values())]


def agent_view(record: AgentRecord) -> dict[str, Any]:
    """`morag-fleet status`'s row for the record, plus its slots' jobs and each GPU."""
    row = views.agent_row(record)
    row["jobs"] = sorted(running_jobs(record), key=_slot_order)
    row["gpus"] = [g for g in list(record.gpus) if isinstance(g, dict)]
    return row


def _slot_order(job: dict[str, Any]) -> tuple[str, str]:
    return (str(job.get("slot") if job.get("slot") is not None else "~"), str(job["job_id"]))


def agent_detail(record: AgentRecord) -> dict[str, Any]:
    """Everything the agent page shows: the row, the hello, the host's load."""
    row = agent_view(record)
    stats = record.host_stats
    row["host_stats"] = {k: stats.get(k) if isinstance(stats, dict) else getattr(stats, k, None)
                         for k in ("cpu_percent", "memory_percent", "memory_available_mb",
                                   "disk_percent", "load1")}
    row.update(key=record.key, pid=record.pid, first_seen=record.first_seen,
               content_types=list(record.content_types), converters=dict(record.converters),
               selftest=dict(record.selftest), unavailable=dict(record.unavailable),
               heartbeat_interval=record.heartbeat_interval,
               counters=dict(record.counters), has_hello=record.has_hello)
    return row
