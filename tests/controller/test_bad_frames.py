"""Hostile and broken frames from a raw DEALER: counted, dropped, and the controller serves on."""

from __future__ import annotations

import random
import time
from pathlib import Path

import msgpack
import zmq

from tests.controller.fleet import ControllerProc, PublisherProc
from tests.support.process import wait_for


def valid_heartbeat(agent: str = "raw") -> dict:
    return {"v": 1, "kind": "heartbeat", "agent": agent, "sid": "s1", "seq": 0, "ts": time.time(),
            "body": {"state": "idle", "slots_used": 0, "slots_total": 1, "active_jobs": [],
                     "counters": {}}}


def bad_payloads() -> dict[str, list[bytes]]:
    wrong_state = valid_heartbeat()
    wrong_state["body"]["state"] = "exploding"
    wrong_version = {**valid_heartbeat(), "v": 99}
    bad_counter = valid_heartbeat()
    bad_counter["body"]["counters"] = {"completed": "many"}
    return {
        "rejected:decode": [b"\xc1\xc1garbage", b"", msgpack.packb(1) + b"trailing",
                            msgpack.packb(msgpack.ExtType(5, b"x"))],
        "rejected:schema": [msgpack.packb([1, 2, 3]), msgpack.packb(wrong_state),
                            msgpack.packb(wrong_version), msgpack.packb(bad_counter),
                            msgpack.packb({**valid_heartbeat(), "agent": "x" * 500})],
        "rejected:oversize": [msgpack.packb({**valid_heartbeat(), "pad": b"\0" * 300_000})],
    }


def test_bad_frames_are_counted_and_the_controller_keeps_serving(
        short_tmp: Path, cleanup: list) -> None:
    controller = ControllerProc(short_tmp)
    cleanup.append(controller.start())
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 2000)
    raw.connect(controller.endpoint)
    try:
        expected = bad_payloads()
        for payloads in expected.values():
            for payload in payloads:
                raw.send(payload)
        raw.send_multipart([b"one", b"two"])  # more parts than the protocol has
        rng = random.Random(4)
        for _ in range(300):
            raw.send(rng.randbytes(rng.randrange(1, 2000)))
        raw.send(msgpack.packb(valid_heartbeat("raw-ok")))  # a good frame after all that

        def counted() -> dict[str, int] | None:
            counts = controller.counts()
            return counts if counts.get("frame:heartbeat", 0) >= 1 else None

        counts = wait_for(counted, 60, "the controller to get through the bad frames")
        for reason, payloads in expected.items():
            assert counts.get(reason, 0) >= len(payloads), (reason, counts)
        assert counts.get("rejected:frames") == 1
        rejected = sum(v for k, v in counts.items() if k.startswith("rejected:"))
        assert rejected == 300 + 1 + sum(len(p) for p in expected.values())
        assert controller.agent("raw-ok")["state"] == "idle"
    finally:
        ctx.destroy(linger=0)

    # a frame over ZeroMQ's hard limit makes it drop that connection; the others are unharmed
    ctx = zmq.Context()
    huge = ctx.socket(zmq.DEALER)
    huge.connect(controller.endpoint)
    huge.send(b"\0" * 3_000_000)
    publisher = PublisherProc(short_tmp, "after", controller.endpoint, interval=0.3)
    cleanup.append(publisher)
    publisher.send(op="events", count=1)
    wait_for(lambda: publisher.link_status()["pending_events"] == 0, 60, "a real agent's events")
    ctx.destroy(linger=0)
    assert controller.proc is not None and controller.proc.poll() is None
    assert controller.cli("status").returncode == 0
