"""The metrics the alerts and the dashboard stand on, from a real controller fed by a real agent
working real jobs from the reference job server: phase durations, failures by reason class, slots
and outboxes."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import requests

from tests.controller.fleet import ControllerProc
from tests.support.agent_proc import SCRIPTED, AgentProcess, wait_until
from tests.support.jobserver import running_jobserver
from tests.support.process import free_port


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series on a /metrics page (labels in any order), or None."""
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return None


def test_phase_durations_failure_reasons_and_slots_from_real_jobs(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="mfl-"))  # short: the control socket path must fit
    port = free_port()
    controller = ControllerProc(base, extra=("--metrics-port", str(port), "--metrics-addr",
                                             "127.0.0.1")).start()
    docs = tmp_path / "docs"
    docs.mkdir()
    try:
        with running_jobserver(tmp_path / "server") as server:
            agent = AgentProcess(tmp_path, server.url, "m1", slots=1, selftest=False,
                                 converters={"document": SCRIPTED},
                                 controller=controller.endpoint, telemetry_plaintext=True,
                                 heartbeat_interval=1).start()
            try:
                ids = []
                for name, text in (("a.txt", "plain one\n"), ("b.txt", "plain two\n"),
                                   ("c.txt", "raise\n")):
                    (docs / name).write_text(text)
                    ids.append(server.create(docs / name, "document"))
                wait_until(lambda: all(server.status(i)["status"] in ("completed", "failed")
                                       for i in ids), 60, "three jobs finished")
                (docs / "slow.txt").write_text("sleep 120\n")
                slow = server.create(docs / "slow.txt", "document")
                wait_until(lambda: any(j["job_id"] == slow and j["phase"] == "converting"
                                       for j in controller.json("jobs")), 60, "converting")
                # the job event may come before the heartbeat that counts the slot busy
                wait_until(lambda: sample(requests.get(f"http://127.0.0.1:{port}/metrics",
                                                       timeout=30).text,
                                          "morag_fleet_slots_busy") == 1.0, 10, "slot busy")
                assert controller.cli("cancel", slow, "--grace", "1").returncode == 0

                def scraped() -> str | None:
                    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
                    done = sample(text, "morag_fleet_phase_duration_seconds_count",
                                  phase="deliver", content_type="document")
                    idle = sample(text, "morag_fleet_slots_busy") == 0.0  # next heartbeat
                    return text if done == 4.0 and idle else None

                text = wait_until(scraped, 30, "four deliveries timed, the slot free again")
            finally:
                agent.stop()
    finally:
        controller.stop()
        shutil.rmtree(base, ignore_errors=True)
    for phase in ("download", "convert", "deliver"):
        assert sample(text, "morag_fleet_phase_duration_seconds_count", phase=phase,
                      content_type="document") == 4.0, phase
    # the cancelled job converted (slept) until the cancel came
    assert sample(text, "morag_fleet_phase_duration_seconds_sum", phase="convert",
                  content_type="document") > 0.5
    for reason in ("cancelled", "conversion"):
        assert sample(text, "morag_fleet_job_failures_total", reason=reason,
                      content_type="document") == 1.0, reason
    assert sample(text, "morag_fleet_jobs_total", outcome="completed",
                  content_type="document") == 2.0
    assert sample(text, "morag_fleet_jobs_total", outcome="failed",
                  content_type="document") == 2.0
    assert sample(text, "morag_fleet_slots") == 1.0
    assert sample(text, "morag_fleet_slots_busy") == 0.0
    assert sample(text, "morag_fleet_outbox_results") == 0.0
    assert "job_id" not in text and slow not in text  # no job ids anywhere in the labels
