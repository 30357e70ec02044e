"""The metric families computed at scrape time from the fleet state, fed with heartbeats through
the real validator: GPU figures (no GPU exists on the test machine, so the agent's readings are
written here as NVML reports them), slots, outboxes and bounded labels."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from morag_fleet.controller.metrics import Metrics
from morag_fleet.controller.state import FleetState, JobOutcome
from morag_fleet.wire import schema


def heartbeat(name: str, **body) -> dict:
    message = {"v": 1, "kind": "heartbeat", "agent": name, "sid": "s1", "seq": 0,
               "ts": time.time(),
               "body": {"state": "busy", "slots_used": 1, "slots_total": 2, "active_jobs": [],
                        "counters": {}, **body}}
    return schema.validate(message)


def scrape(state: FleetState, metrics: Metrics | None = None) -> str:
    return generate_latest((metrics or Metrics(state)).registry).decode()


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def fleet(*beats: dict) -> FleetState:
    state = FleetState()
    for beat in beats:
        record, _bound, _returned = state.admit(beat["agent"], None, b"r-" + beat["agent"].encode(),
                                                time.time())
        state.on_heartbeat(record, beat)
    return state


def test_gpu_figures_per_agent_and_gpu() -> None:
    state = fleet(heartbeat("gpu-1", gpus=[
        {"index": 0, "util": 87, "memory_used_mb": 20480, "memory_total_mb": 24576,
         "temperature": 71},
        {"index": 1, "error": "GPU is lost"}]))
    text = scrape(state)
    assert 'morag_fleet_gpu_utilization_ratio{agent="gpu-1",gpu="0"} 0.87' in text
    assert 'morag_fleet_gpu_temperature_celsius{agent="gpu-1",gpu="0"} 71.0' in text
    gpu0 = {"agent": "gpu-1", "gpu": "0"}
    assert value(text, "morag_fleet_gpu_memory_used_bytes", **gpu0) == 20480 * 2**20
    assert value(text, "morag_fleet_gpu_memory_total_bytes", **gpu0) == 24576 * 2**20
    assert 'gpu="1"' not in text  # a GPU that reports an error has no figures to show


def test_a_lost_agent_shows_no_gpu_or_slots() -> None:
    state = fleet(heartbeat("gpu-1", gpus=[{"index": 0, "util": 50, "temperature": 60}]),
                  heartbeat("cpu-1", outbox_depth=3))
    state.agents["gpu-1"].link = "lost"
    text = scrape(state)
    assert 'morag_fleet_gpu_utilization_ratio{agent="gpu-1"' not in text
    assert "morag_fleet_slots 2.0" in text and "morag_fleet_slots_busy 1.0" in text
    assert "morag_fleet_outbox_results 3.0" in text
    assert 'morag_fleet_outbox_depth{agent="cpu-1"} 3.0' in text
    assert 'morag_fleet_outbox_depth{agent="gpu-1"}' not in text


def test_failure_reasons_and_content_types_stay_bounded() -> None:
    state = FleetState()
    metrics = Metrics(state)
    metrics.job_finished(JobOutcome("a1", "j1", "failed", "audio", 3.0,
                                    "conversion timed out after 600 s"))
    metrics.job_finished(JobOutcome("a1", "j2", "failed", "x" * 200, None, "strange"))
    metrics.job_finished(JobOutcome("a1", "j3", "failed", 'bad"type', None, None))
    text = scrape(state, metrics)
    assert 'morag_fleet_job_failures_total{content_type="audio",reason="timeout"} 1.0' in text
    assert 'morag_fleet_job_failures_total{content_type="unknown",reason="other"} 2.0' in text
    assert "j1" not in text and "xxxx" not in text
