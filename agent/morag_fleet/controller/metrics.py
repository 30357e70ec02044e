"""Prometheus `/metrics` for the controller. Gauges are computed from the fleet state at scrape
time and frame counters are read from plain integers, so ingest pays nothing per message; job
outcomes and durations are recorded when a job finishes, phase durations when the event that
ends the phase arrives.

Labels stay few and bounded, so a fleet of any size makes a scrape of the same shape: state,
content type, phase, a failure's reason class (`reasons`), a frame's kind or refusal reason. No
job ids. Agent names appear only on series that exist while something is wrong with that agent
(a non-empty outbox) or for its GPUs (a handful per GPU host)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from morag_fleet.controller.reasons import reason_class
from morag_fleet.controller.state import AgentRecord, FleetState, JobOutcome
from morag_fleet.wire.schema import PHASE_SECONDS_FIELDS

STATUSES = ("idle", "busy", "draining", "paused", "unknown", "lost", "offline")
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
PHASE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# event field -> phase label of morag_fleet_phase_duration_seconds
PHASE_LABELS = {field: field.removesuffix("_s") for field in PHASE_SECONDS_FIELDS}
MAX_CONTENT_TYPE_LEN = 64


class FleetCollector(Collector):
    def __init__(self, state: FleetState) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        records = list(self.state.agents.values())
        by_status = dict.fromkeys(STATUSES, 0)
        for record in records:
            by_status[record.status] = by_status.get(record.status, 0) + 1
        agents = GaugeMetricFamily("morag_fleet_agents", "Agents by state", labels=["state"])
        for status, count in by_status.items():
            agents.add_metric([status], count)
        yield agents
        online = [r for r in records if r.link == "online"]
        yield GaugeMetricFamily("morag_fleet_active_jobs", "Jobs running fleet-wide",
                                value=sum(r.job_count for r in online))
        yield GaugeMetricFamily("morag_fleet_slots", "Conversion slots of online agents",
                                value=sum(r.slots_total for r in online))
        yield GaugeMetricFamily("morag_fleet_slots_busy", "Busy conversion slots of online agents",
                                value=sum(r.slots_used for r in online))
        yield GaugeMetricFamily("morag_fleet_outbox_results",
                                "Results waiting in the outboxes of all agents",
                                value=sum(r.outbox_depth for r in records))
        outbox = GaugeMetricFamily("morag_fleet_outbox_depth",
                                   "Results waiting in an agent's outbox (agents with any)",
                                   labels=["agent"])
        for record in records:
            if record.outbox_depth:
                outbox.add_metric([record.name], record.outbox_depth)
        yield outbox
        yield from _gpus(online)
        yield from self._frames()

    def _frames(self) -> Iterator[Any]:
        counts = dict(self.state.counts)
        frames = CounterMetricFamily("morag_fleet_frames", "Frames accepted by kind",
                                     labels=["kind"])
        rejected = CounterMetricFamily("morag_fleet_frames_rejected",
                                       "Frames dropped by reason", labels=["reason"])
        for key, value in counts.items():
            group, _, label = key.partition(":")
            if group == "frame":
                frames.add_metric([label], value)
            elif group == "rejected":
                rejected.add_metric([label], value)
        yield frames
        yield rejected


def _gpus(records: list[AgentRecord]) -> Iterator[Any]:
    """Each online agent's GPUs from its last heartbeat."""
    families = {
        "util": GaugeMetricFamily("morag_fleet_gpu_utilization_ratio",
                                  "GPU busy time (0..1)", labels=["agent", "gpu"]),
        "temperature": GaugeMetricFamily("morag_fleet_gpu_temperature_celsius",
                                         "GPU temperature", labels=["agent", "gpu"]),
        "memory_used_mb": GaugeMetricFamily("morag_fleet_gpu_memory_used_bytes",
                                            "GPU memory in use", labels=["agent", "gpu"]),
        "memory_total_mb": GaugeMetricFamily("morag_fleet_gpu_memory_total_bytes",
                                             "GPU memory", labels=["agent", "gpu"]),
    }
    scale = {"util": 0.01, "temperature": 1, "memory_used_mb": 2**20, "memory_total_mb": 2**20}
    for record in records:
        for position, gpu in enumerate(record.gpus):
            if not isinstance(gpu, dict):
                continue
            index = gpu.get("index", position)
            for key, family in families.items():
                value = gpu.get(key)
                if type(value) in (int, float):
                    family.add_metric([record.name, str(index)], value * scale[key])
    yield from families.values()


class Metrics:
    """The registry and the per-job instruments; `serve(port)` starts the HTTP endpoint."""

    def __init__(self, state: FleetState) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(FleetCollector(state))
        self.jobs = Counter("morag_fleet_jobs", "Finished jobs by outcome and content type",
                            ["outcome", "content_type"], registry=self.registry)
        self.duration = Histogram("morag_fleet_job_duration_seconds",
                                  "Claim-to-finish time of jobs", ["content_type"],
                                  buckets=DURATION_BUCKETS, registry=self.registry)
        self.phases = Histogram("morag_fleet_phase_duration_seconds",
                                "Time jobs spent downloading, converting and delivering",
                                ["phase", "content_type"], buckets=PHASE_BUCKETS,
                                registry=self.registry)
        self.failures = Counter("morag_fleet_job_failures",
                                "Failed jobs by reason class and content type",
                                ["reason", "content_type"], registry=self.registry)
        self.server: Any = None

    def job_finished(self, outcome: JobOutcome) -> None:
        content_type = _bounded(outcome.content_type)
        self.jobs.labels(outcome.outcome, content_type).inc()
        if outcome.duration is not None:
            self.duration.labels(content_type).observe(outcome.duration)
        if outcome.outcome == "failed":
            self.failures.labels(reason_class(outcome.error), content_type).inc()

    def job_event(self, record: AgentRecord, body: dict[str, Any]) -> None:
        """Phase timings an event carries (the agent measures them; validated as numbers)."""
        if body.get("scope") != "job":
            return
        content_type = None
        for field, phase in PHASE_LABELS.items():
            seconds = body.get(field)
            if type(seconds) in (int, float) and seconds >= 0:
                if content_type is None:
                    content_type = _bounded(body.get("content_type"))
                self.phases.labels(phase, content_type).observe(seconds)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        self.server, _thread = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None


def _bounded(content_type: Any) -> str:
    """A content type label: agents name their types, so an odd one is shown as "unknown"."""
    if isinstance(content_type, str) and content_type and len(content_type) <= \
            MAX_CONTENT_TYPE_LEN and content_type.replace("_", "").replace("-", "").isalnum():
        return content_type
    return "unknown"
