"""One agent's bad figures must not take the views down for the whole fleet: nested fields and
numbers are checked on intake (a bad frame is counted as rejected), records stored before that
check load without harm, and `morag-fleet forget` removes a record for good."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from morag_fleet.controller.state import AgentRecord
from morag_fleet.controller.store import PendingEvent, Store
from tests.controller.fleet import ControllerProc
from tests.controller.hostile import RawPeer, fleet_controller, heartbeat, hello, strict_json
from tests.support.process import wait_for

NAN, INF = math.nan, math.inf
VIEWS = ("status", "agents", "jobs", "events")


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def poisoned_frames() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind, body, envelope overrides) that an agent, or an authorized key, may send."""
    job = {"job_id": "j1", "phase": "converting", "progress": 0.5}
    return [
        ("heartbeat", heartbeat(gpus=[{"util": "x"}]), {}),
        ("heartbeat", heartbeat(gpus=[{"util": 50, "memory_used_mb": NAN}]), {}),
        ("heartbeat", heartbeat(gpus=["not a map"]), {}),
        ("heartbeat", heartbeat(active_jobs=[{**job, "started_at": NAN}]), {}),
        ("heartbeat", heartbeat(active_jobs=[{**job, "progress": INF}]), {}),
        ("heartbeat", heartbeat(active_jobs=[{**job, "phase": ["a", "list"]}]), {}),
        ("heartbeat", heartbeat(cpu_percent="lots"), {}),
        ("heartbeat", heartbeat(), {"ts": NAN}),
        ("hello", hello(heartbeat_interval=NAN), {}),
        ("hello", hello(heartbeat_interval=1e300), {}),
        ("hello", hello(content_types=["document", 7]), {}),
        ("event", {"scope": "job", "name": "converting", "job_id": "j1", "progress": NAN}, {}),
        ("event", {"scope": "agent", "name": "note"}, {"ts": INF}),
        ("event", {"scope": "agent", "name": "note", "deep": deep(200)}, {}),
    ]


def assert_views_work(controller: ControllerProc) -> dict[str, Any]:
    """Every view as a table and as strict JSON; returns the JSON by view name."""
    data = {}
    for view in VIEWS:
        table = controller.cli(view)
        assert table.returncode == 0, (view, table.stderr)
        assert "Traceback" not in table.stderr
        result = controller.cli(view, "--json")
        assert result.returncode == 0, (view, result.stderr)
        data[view] = strict_json(result.stdout)
    return data


@pytest.mark.parametrize("curve", [False, True], ids=["plaintext", "curve"])
def test_bad_nested_fields_and_numbers_are_rejected_and_views_keep_working(
        short_tmp: Path, cleanup: list, curve: bool) -> None:
    controller, keys = fleet_controller(short_tmp, cleanup, curve, ("p1",))
    peer = RawPeer(controller.endpoint, keys["p1"])
    try:
        peer.send("hello", "p1", hello(heartbeat_interval=0.5))
        frames = poisoned_frames()
        for kind, body, envelope in frames:
            peer.send(kind, "p1", body, **envelope)
        peer.send("heartbeat", "p1", heartbeat(state="busy"))
        wait_for(lambda: (controller.agent("p1") or {}).get("state") == "busy", 60,
                 "the good heartbeat after the bad frames")
    finally:
        peer.close()
    counts = controller.counts()
    assert counts.get("rejected:schema") == len(frames), counts
    data = assert_views_work(controller)
    row = next(a for a in data["status"]["agents"] if a["agent"] == "p1")
    assert row["gpu"] is None and row["done"] == 1
    assert data["jobs"] == []
    # the valid hello's interval still applies: silent now, the agent is lost within seconds
    wait_for(lambda: controller.agent("p1")["state"] == "lost", 30, "p1 to be lost")
    controller.stop()
    controller.start()  # the stored heartbeat is replayed: still nothing the views choke on
    assert_views_work(controller)
    assert controller.agent("p1")["state"] == "lost"


def write_history_from_before_the_check(state_dir: Path) -> None:
    """Rows as a controller without the intake checks stored them (through the real store)."""
    state_dir.mkdir(parents=True, mode=0o700)
    store = Store(state_dir / "controller.sqlite")
    now = time.time()
    beat = heartbeat(gpus=[{"util": "x"}], cpu_percent="lots",
                     active_jobs=[{"job_id": "j1", "started_at": NAN, "progress": "half"}])
    poisoned = AgentRecord(name="poisoned", host="h", version="1", link="online",
                           gpus=[{"util": "x", "memory_total_mb": NAN}], content_types=[1, None],
                           heartbeat_interval=NAN, first_seen=now, last_seen=now, has_hello=True)
    poisoned.beat = msgpack.packb({"v": 1, "kind": "heartbeat", "agent": "poisoned", "sid": "s",
                                   "seq": 1, "ts": now, "body": beat})
    silent = AgentRecord(name="silent", host="h2", version="1", link="online",
                         heartbeat_interval=1e300, first_seen=now - 3600, last_seen=now - 3600)
    store.save_agents([poisoned, silent])
    store.record_events([PendingEvent("poisoned", now, {"scope": "job", "name": "converting",
                                                        "job_id": "j1", "progress": NAN})], {})
    store.db.execute("INSERT INTO agents (name, key, last_seen, data) VALUES "
                     "('damaged', NULL, 0, '{not json')")
    store.close()


@pytest.mark.parametrize("curve", [False, True], ids=["plaintext", "curve"])
def test_records_stored_before_the_check_load_without_harm_and_forget_removes_them(
        short_tmp: Path, cleanup: list, curve: bool) -> None:
    write_history_from_before_the_check(short_tmp / "ctl")
    controller, _ = fleet_controller(short_tmp, cleanup, curve, ())
    data = assert_views_work(controller)
    rows = {a["agent"]: a for a in data["status"]["agents"]}
    assert set(rows) == {"poisoned", "silent"}
    assert rows["poisoned"]["gpu"] is None
    agent = next(a for a in data["agents"] if a["name"] == "poisoned")
    assert agent["content_types"] == [] and agent["heartbeat_interval"] == 5.0
    assert [e["body"]["progress"] for e in data["events"]
            if e["scope"] == "job"] == [None]  # NaN is not JSON
    # an interval of 1e300 would never let it be declared lost; the default does
    wait_for(lambda: controller.agent("silent")["state"] == "lost", 30, "silent to be lost")

    result = controller.cli("forget", "poisoned")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forgot poisoned")
    assert controller.agent("poisoned") is None
    forgotten = [e for e in controller.json("events", "--agent", "poisoned")
                 if e["name"] == "forgotten"]
    assert len(forgotten) == 1
    unknown = controller.cli("forget", "nobody")
    assert unknown.returncode == 1 and "unknown agent 'nobody'" in unknown.stderr
    controller.stop()
    controller.start()
    assert controller.agent("poisoned") is None  # gone from the store too
    assert controller.agent("silent") is not None
