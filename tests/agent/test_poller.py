"""The poller in-process against the real reference server over HTTP: one request while idle,
one per free slot while jobs keep coming."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.agent_proc import wait_until
from tests.support.jobserver import JobServer

from morag_fleet.agent.poller import Poller
from morag_fleet.agent.slotbudget import SlotBudget
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.models import Job
from morag_fleet.settings import AgentSettings

SLOTS = 4


class CountingClient(MoragClient):
    """The real client; also counts the polls in flight at once."""

    def __init__(self, settings: AgentSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def poll(self, content_types, wait: float = 0.0) -> Job | None:  # type: ignore[override]
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return super().poll(content_types, wait=wait)
        finally:
            with self._lock:
                self.in_flight -= 1


class Harness:
    """A poller whose 'slots' hold each claimed job for `hold` seconds, then free themselves."""

    def __init__(self, server: JobServer, tmp: Path, hold: float) -> None:
        settings = AgentSettings(worker_id="poller-test", api_base_url=server.url,
                                 max_concurrent_jobs=SLOTS, long_poll_wait=3.0, poll_interval=2.0,
                                 temp_dir=tmp / "tmp", state_dir=tmp / "state")
        self.client = CountingClient(settings)
        self.budget = SlotBudget(SLOTS)
        self.stopping, self.paused = threading.Event(), threading.Event()
        self.claimed: list[str] = []
        self.hold = hold
        self.poller = Poller(settings, self.client, ["document"], self.budget, self._claim,
                             lambda job_id, reason: None, self.stopping, self.paused,
                             helpers=SLOTS - 1)

    def _claim(self, job: Job) -> bool:
        self.claimed.append(job.job_id)
        timer = threading.Timer(self.hold, self.budget.release)
        timer.daemon = True
        timer.start()
        return True

    def start(self) -> Harness:
        def spawn(target, name, *args) -> threading.Thread:
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            return thread

        self.poller.start(spawn)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.poller.join(timeout=30)
        self.client.close()


@pytest.fixture
def harness(jobserver: JobServer, tmp_path: Path) -> Iterator[Harness]:
    made = Harness(jobserver, tmp_path, hold=0.5).start()
    yield made
    made.stop()
    assert not made.poller.alive


def test_idle_agent_holds_one_request(jobserver, harness, make_doc) -> None:
    wait_until(lambda: jobserver.stats()["long_polls_waiting"] == 1, 30, "the lead's long poll")
    for _ in range(10):  # sampled over a few long polls: never more than the lead's
        assert jobserver.stats()["long_polls_waiting"] <= 1
        assert harness.client.in_flight <= 1
        time.sleep(0.5)
    assert harness.client.most_in_flight == 1
    job_id = jobserver.upload(make_doc("one.txt", "one"), "document")
    wait_until(lambda: harness.claimed == [job_id], 30, "the waiting poll to bring the job")


def test_busy_agent_polls_for_every_free_slot(jobserver, harness, make_doc) -> None:
    ids = [jobserver.upload(make_doc(f"b{i}.txt", f"burst {i}"), "document") for i in range(24)]
    wait_until(lambda: sorted(harness.claimed) == sorted(ids), 60, "all 24 claimed")
    assert len(set(harness.claimed)) == 24
    assert 1 < harness.client.most_in_flight <= SLOTS
    # the burst is over: the helpers park again and the lead alone waits
    wait_until(lambda: harness.client.in_flight <= 1
               and jobserver.stats()["long_polls_waiting"] <= 1, 30, "back to one poll")
