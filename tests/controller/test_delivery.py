"""Job events survive a controller that is down or killed: each arrives exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.controller.fleet import ControllerProc, PublisherProc
from tests.support.process import wait_for


def job_event_counts(controller: ControllerProc, agent: str) -> Counter[tuple[str, str]]:
    events = controller.json("events", "--agent", agent, "--limit", "10000")
    return Counter((e["job_id"], e["name"]) for e in events if e["scope"] == "job")


def all_acked(publisher: PublisherProc) -> bool:
    status = publisher.link_status()
    return status["connected"] and status["pending_events"] == 0


def test_events_emitted_while_controller_is_down_arrive_exactly_once(
        short_tmp: Path, cleanup: list) -> None:
    controller = ControllerProc(short_tmp)
    cleanup.append(controller.start())
    publisher = PublisherProc(short_tmp, "a1", controller.endpoint, interval=0.3)
    cleanup.append(publisher)
    publisher.send(op="events", count=10, prefix="before")
    wait_for(lambda: all_acked(publisher), 60, "the first events to be acked")
    first_seen = controller.json("agents")[0]["first_seen"]

    assert controller.stop() == 0
    publisher.send(op="events", count=20, prefix="during")
    publisher.expect("done")
    status = publisher.link_status()
    assert status["pending_events"] == 60  # kept, not lost, and the publisher did not block

    controller.start()  # same port, same state dir
    wait_for(lambda: all_acked(publisher), 60, "the buffered events to be acked")
    counts = job_event_counts(controller, "a1")
    assert len(counts) == 90
    assert set(counts.values()) == {1}
    assert {job for job, _ in counts} == {f"before-{i}" for i in range(10)} | {
        f"during-{i}" for i in range(20)}
    # the restart kept history: the agent is the same record, not a new one
    assert controller.json("agents")[0]["first_seen"] == first_seen
    assert controller.agent("a1")["done"] == 30


def test_controller_killed_mid_stream_still_records_each_event_once(
        short_tmp: Path, cleanup: list) -> None:
    controller = ControllerProc(short_tmp)
    cleanup.append(controller.start())
    publisher = PublisherProc(short_tmp, "a1", controller.endpoint, interval=0.3)
    cleanup.append(publisher)
    wait_for(lambda: publisher.link_status()["connected"], 60, "the link")
    publisher.send(op="events", count=400, prefix="burst")
    publisher.expect("done")
    assert controller.proc is not None
    controller.proc.kill()  # SIGKILL while events are in flight
    controller.proc.wait()
    controller.start()
    wait_for(lambda: all_acked(publisher), 90, "every event to be acked after the restart")
    counts = job_event_counts(controller, "a1")
    assert len(counts) == 1200
    assert set(counts.values()) == {1}


def test_agent_restart_starts_a_new_sequence_without_losing_events(
        short_tmp: Path, cleanup: list) -> None:
    controller = ControllerProc(short_tmp)
    cleanup.append(controller.start())
    for run in ("one", "two"):
        publisher = PublisherProc(short_tmp, "a1", controller.endpoint, interval=0.3)
        cleanup.append(publisher)
        publisher.send(op="events", count=3, prefix=run)
        wait_for(lambda p=publisher: all_acked(p), 60, f"run {run} acked")
        publisher.close()
    counts = job_event_counts(controller, "a1")
    assert len(counts) == 18
    assert set(counts.values()) == {1}
