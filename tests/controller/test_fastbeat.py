"""The heartbeat shortcut may refuse more than the full validator, never accept more, and what it
accepts must update an agent exactly as the full path does."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from morag_fleet.controller.fastbeat import FAST_MAX_BYTES, decode_heartbeat
from morag_fleet.controller.state import FleetState
from morag_fleet.controller.store import Store
from morag_fleet.controller.views import agent_row, jobs_data
from morag_fleet.wire import codec, schema


def heartbeat() -> dict[str, Any]:
    return {"v": 1, "kind": "heartbeat", "agent": "a1", "sid": "s1", "seq": 0, "ts": time.time(),
            "body": {"state": "busy", "slots_used": 1, "slots_total": 2,
                     "active_jobs": [{"job_id": "j1", "content_type": "audio",
                                      "phase": "converting", "progress": 0.5, "slot": 0,
                                      "started_at": time.time()}],
                     "counters": {"claimed": 3, "completed": 2}, "outbox_depth": 1,
                     "cpu_percent": 12.5, "memory_percent": 40.0, "memory_available_mb": 900,
                     "disk_percent": 30.0, "load1": 0.5,
                     "gpus": [{"index": 0, "util": 45, "memory_used_mb": 3100,
                               "memory_total_mb": 81920, "temperature": 60}],
                     "selftest": {"audio": {"ok": False, "reason": "cannot load whisper model"},
                                  "document": {"ok": True, "reason": ""}}}}


def full_path_accepts(frame: bytes) -> bool:
    try:
        return schema.validate(codec.decode(frame))["kind"] == "heartbeat"
    except (codec.DecodeError, schema.SchemaError):
        return False


def test_a_real_heartbeat_takes_the_shortcut_and_lands_like_the_full_path() -> None:
    frame = codec.encode(heartbeat())
    fast = decode_heartbeat(frame)
    assert fast is not None
    by_fast, by_full = FleetState(), FleetState()
    now = time.time()
    record, _, _ = by_fast.admit("a1", None, b"r", now)
    by_fast.on_fast_heartbeat(record, fast.body)
    record, _, _ = by_full.admit("a1", None, b"r", now)
    by_full.on_heartbeat(record, schema.validate(codec.decode(frame)))
    assert agent_row(by_fast.agents["a1"]) == agent_row(by_full.agents["a1"])
    assert jobs_data(by_fast, now) == jobs_data(by_full, now)
    assert by_fast.agents["a1"].to_dict() == by_full.agents["a1"].to_dict()


@pytest.mark.parametrize("mutate", [
    lambda m: m["body"].update(cpu_percent=msgpack.ExtType(5, b"x")),
    lambda m: m["body"].update(cpu_percent=msgpack.Timestamp(1, 0)),
    lambda m: m["body"].update(newer_field=1),  # tolerated by the full path, not by the shortcut
    lambda m: m.update(seq=True),
    lambda m: m["body"]["counters"].update(done=True),
    lambda m: m["body"]["active_jobs"][0].update(job_id="bad\nid"),
    lambda m: m.update(agent="x" * 500),
    lambda m: m["body"].update(state="exploding"),
    lambda m: m.update(kind="event"),
    lambda m: m["body"]["selftest"]["audio"].update(seconds=1.5),  # the full path keeps it
    lambda m: m["body"]["selftest"]["audio"].update(ok="no"),
    lambda m: m["body"].update(selftest=["audio"]),
])
def test_anything_unusual_goes_to_the_full_validator(mutate) -> None:
    msg = heartbeat()
    mutate(msg)
    assert decode_heartbeat(msgpack.packb(msg)) is None


def test_large_frames_go_to_the_full_validator() -> None:
    msg = heartbeat()
    msg["body"]["counters"] = {f"c{i}": i for i in range(20_000)}  # more items than allowed
    frame = msgpack.packb(msg)
    assert len(frame) > FAST_MAX_BYTES
    assert decode_heartbeat(frame) is None
    assert not full_path_accepts(frame)


def test_random_corruptions_never_pass_the_shortcut_alone() -> None:
    rng = random.Random(7)
    good = bytearray(codec.encode(heartbeat()))
    fast_accepted = 0
    for _ in range(5000):
        frame = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        if decode_heartbeat(bytes(frame)) is not None:
            fast_accepted += 1
            assert full_path_accepts(bytes(frame)), bytes(frame)
    assert fast_accepted > 0  # some corruptions are harmless (a digit in a value) and must pass


def test_the_store_keeps_the_last_heartbeat_frame_and_replays_it(tmp_path: Path) -> None:
    state = FleetState()
    record, _, _ = state.admit("a1", None, b"r", time.time())
    frame = codec.encode(heartbeat())
    beat = decode_heartbeat(frame)
    assert beat is not None
    state.on_fast_heartbeat(record, beat.body)
    record.beat = frame
    store = Store(tmp_path / "c.sqlite")
    store.save_agents([record])
    store.close()
    restarted = FleetState()
    restarted.load(Store(tmp_path / "c.sqlite").load_agents())
    assert agent_row(restarted.agents["a1"]) == agent_row(record)
    assert [j["job_id"] for j in jobs_data(restarted)] == ["j1"]



@pytest.mark.parametrize("fast", [True, False], ids=["shortcut", "full path"])
def test_a_heartbeat_without_a_verdict_leaves_the_hellos_and_a_new_verdict_replaces_it(
        fast: bool) -> None:
    """Agents older than the heartbeat's `selftest` send none: the hello's verdicts stay. A
    verdict that matches the hello keeps the hello's details; one that differs replaces them."""
    state = FleetState()
    record, _, _ = state.admit("a1", None, b"r", time.time())
    state.on_hello(record, {"sid": "s1", "body": {
        "version": "1", "host": "h", "slots": 2, "heartbeat_interval": 1.0,
        "selftest": {"audio": {"ok": False, "reason": "cannot load whisper model",
                               "seconds": 1.5},
                     "document": {"ok": True, "reason": "", "seconds": 0.2}}}})

    def beat(msg: dict[str, Any]) -> None:
        frame = codec.encode(msg)
        if fast:
            decoded = decode_heartbeat(frame)
            assert decoded is not None
            state.on_fast_heartbeat(record, decoded.body)
        else:
            state.on_heartbeat(record, schema.validate(codec.decode(frame)))

    old = heartbeat()
    del old["body"]["selftest"]
    beat(old)
    assert record.selftest["audio"]["seconds"] == 1.5
    beat(heartbeat())  # the same verdict: the hello's details stay
    assert record.selftest["document"] == {"ok": True, "reason": "", "seconds": 0.2}
    assert agent_row(record)["selftest"] == "FAIL audio"
    changed = heartbeat()
    changed["body"]["selftest"] = {"document": {"ok": False, "reason": "tesseract gone"}}
    beat(changed)
    assert record.selftest == {"document": {"ok": False, "reason": "tesseract gone"}}
    assert agent_row(record)["selftest_failed"] == {"document": "tesseract gone"}
