"""The fleet as the controller knows it: one record per agent, updated from validated messages.

Identity (which key may use which name) follows the rules in `identity`. Job events are
deduplicated by (agent, session, seq), so a resend after a reconnect or a controller restart
records nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from morag_fleet.controller.fastbeat import FastBody, FastJob, decode_heartbeat
from morag_fleet.controller.identity import Identities
from morag_fleet.controller.identity import IdentityRefused as IdentityRefused  # re-exported
from morag_fleet.wire import codec, schema

TERMINAL_PHASES = ("completed", "failed", "result_refused", "result_discarded")
NO_STATE_PHASES = ("slot_recycled",)  # said about a job without changing its phase
LOST_AFTER_BEATS = 3

# fields kept from the heartbeat verbatim for the views
HOST_FIELDS = ("cpu_percent", "memory_percent", "memory_available_mb", "disk_percent", "load1")
# what the store writes as JSON; the rest is rebuilt from the last heartbeat frame (`beat`)
STORED_FIELDS = ("name", "key", "host", "version", "pid", "content_types", "converters",
                 "heartbeat_interval", "link", "gpus", "first_seen", "last_seen", "has_hello",
                 "selftest", "unavailable")
# per-process working fields the views never show
_PRIVATE_FIELDS = ("routing_id", "job_map", "beat_jobs", "host_stats", "next_ack", "beat",
                   "ack_key", "ack_frame", "beat_selftest")
SELFTEST_TYPES_KEPT = 64  # content types kept from a heartbeat's verdict
SELFTEST_REASON_CHARS = 500


@dataclass(slots=True)
class AgentRecord:
    name: str
    key: str | None = None
    host: str = ""
    version: str = ""
    pid: int | None = None
    content_types: list[str] = field(default_factory=list)
    converters: dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: float = 5.0
    state: str = "unknown"  # as the agent reports it: idle | busy | draining | paused
    link: str = "online"  # online | lost | offline (said bye)
    slots_used: int = 0
    slots_total: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    outbox_depth: int = 0
    gpus: list[dict[str, Any]] = field(default_factory=list)
    host_stats: dict[str, Any] | FastBody = field(default_factory=dict)  # the last beat's body
    job_map: dict[str, dict[str, Any]] = field(default_factory=dict)  # see `jobs`
    beat_jobs: list[FastJob] | None = None  # the last fast heartbeat's jobs, not yet in job_map
    first_seen: float = 0.0
    last_seen: float = 0.0
    has_hello: bool = False
    sid: str = ""
    last_seq: int = 0
    routing_id: bytes | None = None
    next_ack: float = 0.0  # heartbeats are acked at most once a second (see server.handle)
    beat: bytes | None = None  # the last heartbeat frame as received (what the store keeps)
    ack_key: tuple[int, str, bool] | None = None  # (last_seq, sid, has_hello) of `ack_frame`
    ack_frame: bytes = b""
    # the self-test verdicts by content type: {type: {ok, reason, seconds, ...}} from the hello,
    # kept in step with the {type: {ok, reason}} every heartbeat carries (see `on_heartbeat`)
    selftest: dict[str, Any] = field(default_factory=dict)
    beat_selftest: Any = None  # the last heartbeat's verdict as received, to skip unchanged ones
    # the hello's configured content types whose converter cannot run there: {type: why}
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.state if self.link == "online" else self.link

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        """Running jobs by id. A heartbeat only leaves its job list here; the maps that events
        update and views read are built when first asked for (main thread only)."""
        if self.beat_jobs is not None:
            self.job_map = {job.job_id: {"job_id": job.job_id, "content_type": job.content_type,
                                         "phase": job.phase, "progress": job.progress,
                                         "slot": job.slot, "started_at": job.started_at}
                            for job in self.beat_jobs}
            self.beat_jobs = None
        return self.job_map

    @jobs.setter
    def jobs(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.job_map, self.beat_jobs = jobs, None

    @property
    def job_count(self) -> int:
        """len(jobs) without building anything (safe from the metrics thread)."""
        beat_jobs = self.beat_jobs
        return len(self.job_map) if beat_jobs is None else len(beat_jobs)

    def to_dict(self) -> dict[str, Any]:
        """Everything the views show (not the routing id, which dies with us)."""
        data = {name: getattr(self, name) for name in self.__slots__
                if name not in _PRIVATE_FIELDS}
        stats = self.host_stats
        data["host_stats"] = {k: stats.get(k) if isinstance(stats, dict) else getattr(stats, k)
                              for k in HOST_FIELDS}
        data["jobs"] = [job_view(job) for job in self.jobs.values()]
        data["status"] = self.status
        for name in ("drain_note", "drain_until"):  # see views.drain_info for the checks
            value = stats.get(name) if isinstance(stats, dict) else getattr(stats, name, None)
            data[name] = value if self.link == "online" else None
        return data

    def stored_dict(self) -> dict[str, Any]:
        """What changes rarely (hello, identity, link); heartbeat fields come from `beat`."""
        return {name: getattr(self, name) for name in STORED_FIELDS}



@dataclass
class JobOutcome:
    agent: str
    job_id: str
    outcome: str
    content_type: str
    duration: float | None
    error: str | None = None


class FleetState:
    """All agents; every method runs on the controller's main thread."""

    def __init__(self, is_authorized: Callable[[str], bool] = lambda key: True,
                 names_per_key: int = 1) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.identities = Identities(is_authorized, names_per_key)
        self.dirty: set[str] = set()
        self.counts: dict[str, int] = {}  # frames by kind and rejections by reason

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def load(self, records: Iterable[AgentRecord]) -> None:
        for record in records:
            record.routing_id = None
            if record.beat:
                self.replay_beat(record, record.beat)
            self.agents[record.name] = record
            self.identities.bind(record.name, None, record.key)

    def remove(self, name: str) -> AgentRecord | None:
        """Forget an agent: its record, its key's binding to the name, its route."""
        record = self.agents.pop(name, None)
        if record is not None:
            self.identities.unbind(name, record.key)
            self.identities.drop_route(record)
            self.dirty.discard(name)
        return record

    def replay_beat(self, record: AgentRecord, frame: bytes) -> None:
        """Apply a stored heartbeat frame again (after a restart); a bad one is ignored."""
        fast = decode_heartbeat(frame)
        if fast is not None:
            self.on_fast_heartbeat(record, fast.body)
            return
        try:
            msg = schema.validate(codec.decode(frame))
        except (codec.DecodeError, schema.SchemaError):
            return
        if msg["kind"] == "heartbeat":
            self.on_heartbeat(record, msg)

    # ---- identity --------------------------------------------------------------------------
    def admit(self, name: str, key: str | None, routing_id: bytes, now: float) -> tuple[
            AgentRecord, bool, bool]:
        """The agent's record for a message from `key`; (record, newly bound, back from lost or
        offline). Raises IdentityRefused when `identity`'s rules refuse the key this name."""
        record = self.agents.get(name)
        bound = self.identities.may_bind(name, record.key if record else None, key)
        if record is None:
            record = self.agents[name] = AgentRecord(name=name, first_seen=now)
        if bound:
            self.identities.bind(name, record.key, key)
            record.key = key
        self.identities.route(record, routing_id, self.agents)
        record.last_seen = now
        returned = record.link != "online"
        record.link = "online"
        self.dirty.add(name)
        return record, bound, returned

    # ---- message kinds ---------------------------------------------------------------------
    def on_hello(self, record: AgentRecord, msg: dict[str, Any]) -> None:
        body = msg["body"]
        record.host = body["host"]
        record.version = body["version"]
        record.slots_total = body["slots"]
        record.heartbeat_interval = float(body["heartbeat_interval"])
        record.content_types = list(body.get("content_types") or [])
        record.converters = dict(body.get("converters") or {})
        record.gpus = list(body.get("gpus") or record.gpus)
        record.pid = body.get("pid") if isinstance(body.get("pid"), int) else None
        selftest = body.get("selftest")
        record.selftest = {k: v for k, v in selftest.items() if isinstance(v, dict)} \
            if isinstance(selftest, dict) else {}
        record.beat_selftest = None  # the next heartbeat's verdict is compared with this one
        record.unavailable = _reasons(body.get("unavailable"))
        record.has_hello = True
        self._session(record, msg["sid"])

    def on_heartbeat(self, record: AgentRecord, msg: dict[str, Any]) -> None:
        """Kept cheap (it runs for every heartbeat of the fleet): references, not copies."""
        body = msg["body"]
        record.state = body["state"]
        record.slots_used = body["slots_used"]
        record.slots_total = body["slots_total"]
        record.counters = body["counters"]
        record.outbox_depth = body.get("outbox_depth") or 0
        gpus = body.get("gpus")
        if gpus is not None:
            record.gpus = gpus
        record.host_stats = body
        record.jobs = {job["job_id"]: job for job in body["active_jobs"]}
        selftest = body.get("selftest")
        if selftest is not None and selftest != record.beat_selftest:
            record.beat_selftest = selftest
            _take_selftest(record, selftest.items(), lambda v: (v["ok"], v.get("reason")))

    def on_fast_heartbeat(self, record: AgentRecord, body: FastBody) -> None:
        """The same as `on_heartbeat` for a heartbeat read by `fastbeat` (typed, not a map)."""
        record.state = body.state
        record.slots_used = body.slots_used
        record.slots_total = body.slots_total
        record.counters = body.counters
        record.outbox_depth = body.outbox_depth or 0
        if body.gpus is not None:
            record.gpus = body.gpus
        record.host_stats = body
        record.beat_jobs = body.active_jobs
        selftest = body.selftest
        if selftest is not None and selftest != record.beat_selftest:
            record.beat_selftest = selftest
            _take_selftest(record, selftest.items(), lambda v: (v.ok, v.reason))

    def on_bye(self, record: AgentRecord) -> None:
        record.link = "offline"
        self.identities.drop_route(record)

    def on_event(self, record: AgentRecord, msg: dict[str, Any]) -> tuple[bool, JobOutcome | None]:
        """(is new, outcome when a job finished). Duplicates change nothing."""
        self._session(record, msg["sid"])
        if msg["seq"] <= record.last_seq:
            return False, None
        record.last_seq = msg["seq"]
        body = msg["body"]
        if body["scope"] != "job":
            return True, None
        return True, self._job_event(record, body, msg["ts"])

    def _session(self, record: AgentRecord, sid: str) -> None:
        if record.sid != sid:
            record.sid, record.last_seq = sid, 0

    def _job_event(self, record: AgentRecord, body: dict[str, Any],
                   ts: float) -> JobOutcome | None:
        job_id, phase = body["job_id"], body["name"]
        if phase in NO_STATE_PHASES:
            return None
        job = record.jobs.get(job_id) or {"job_id": job_id, "started_at": ts,
                                          "content_type": "", "progress": None}
        job["phase"] = phase
        if isinstance(body.get("content_type"), str):
            job["content_type"] = body["content_type"]
        if body.get("progress") is not None:
            job["progress"] = body["progress"]
        if phase not in TERMINAL_PHASES:
            record.jobs[job_id] = job
            return None
        record.jobs.pop(job_id, None)
        duration = body.get("duration")
        if duration is None and isinstance(job.get("started_at"), (int, float)):
            duration = max(0.0, ts - job["started_at"])
        error = body.get("error") if isinstance(body.get("error"), str) else None
        return JobOutcome(record.name, job_id, phase, job["content_type"] or "unknown", duration,
                          error)

    # ---- liveness --------------------------------------------------------------------------
    def find_lost(self, now: float | None = None) -> list[AgentRecord]:
        """Mark agents silent for three heartbeat intervals as lost; return the newly lost."""
        now = time.time() if now is None else now
        lost = []
        for record in list(self.agents.values()):
            if record.link == "online" and \
                    now - record.last_seen > LOST_AFTER_BEATS * record.heartbeat_interval:
                record.link = "lost"
                self.identities.drop_route(record)
                self.dirty.add(record.name)
                lost.append(record)
        return lost


def _take_selftest(record: AgentRecord, verdicts: Iterable[tuple[str, Any]],
                   read: Callable[[Any], tuple[bool, str | None]]) -> None:
    """A heartbeat's self-test verdict becomes the record's, so a controller that missed the
    hello (started after the agent) still shows a failed type. A type whose verdict matches what
    the hello said keeps the hello's details (seconds, score); the others take the heartbeat's
    {ok, reason}, and types the heartbeat does not name are dropped."""
    known = record.selftest
    taken: dict[str, Any] = {}
    for name, verdict in verdicts:
        if len(taken) >= SELFTEST_TYPES_KEPT:
            break
        ok, reason = read(verdict)
        reason = (reason or "")[:SELFTEST_REASON_CHARS]
        previous = known.get(name)
        if isinstance(previous, dict) and previous.get("ok", True) is ok \
                and str(previous.get("reason") or "")[:SELFTEST_REASON_CHARS] == reason:
            taken[name] = previous
        else:
            taken[name] = {"ok": ok, "reason": reason}
    if taken != known:
        record.selftest = taken


def _reasons(value: Any) -> dict[str, str]:
    """{name: reason} from a hello field the schema leaves free: text only, bounded."""
    if type(value) is not dict:
        return {}
    return {k: v[:500] for k, v in list(value.items())[:64]
            if type(k) is str and type(v) is str}


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": job["job_id"], "content_type": job.get("content_type") or "",
            "phase": job.get("phase") or "", "progress": job.get("progress"),
            "started_at": job.get("started_at")}
