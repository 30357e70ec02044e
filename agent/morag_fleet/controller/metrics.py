"""Prometheus `/metrics` for the controller. Gauges are computed from the fleet state at scrape
time and frame counters are read from plain integers, so ingest pays nothing per message; job
outcomes and durations are recorded when a job finishes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from morag_fleet.controller.state import FleetState, JobOutcome

STATUSES = ("idle", "busy", "draining", "paused", "unknown", "lost", "offline")
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


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
        outbox = GaugeMetricFamily("morag_fleet_outbox_depth",
                                   "Results waiting in an agent's outbox", labels=["agent"])
        for record in records:
            outbox.add_metric([record.name], record.outbox_depth)
        yield outbox
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
        self.server: Any = None

    def job_finished(self, outcome: JobOutcome) -> None:
        self.jobs.labels(outcome.outcome, outcome.content_type).inc()
        if outcome.duration is not None:
            self.duration.labels(outcome.content_type).observe(outcome.duration)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        self.server, _thread = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
