"""The pieces the controller is made of, in-process: codec limits, schema, dedup, retention."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import pytest
import zmq

from morag_fleet.controller.server import ZERO_COPY_RECV, copying_context
from morag_fleet.controller.state import FleetState, IdentityRefused
from morag_fleet.controller.store import PendingEvent, Retention, Store
from morag_fleet.wire import codec, schema


def event(seq: int, sid: str = "s1", job: str = "j1", phase: str = "claimed") -> dict:
    return {"v": 1, "kind": "event", "agent": "a1", "sid": sid, "seq": seq, "ts": time.time(),
            "body": {"scope": "job", "name": phase, "job_id": job, "content_type": "audio"}}


def test_codec_refuses_extension_types_and_huge_containers() -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(msgpack.packb(msgpack.ExtType(1, b"x")))
    with pytest.raises(codec.DecodeError):
        codec.decode(msgpack.packb(list(range(20_000))))
    with pytest.raises(codec.DecodeError):
        codec.decode(b"\0" * (schema.MAX_FRAME_BYTES + 1))
    assert codec.decode(codec.encode({"a": [1, 2]})) == {"a": [1, 2]}


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m.update(v=2), "version"),
    (lambda m: m.update(kind="shout"), "kind"),
    (lambda m: m.update(seq=-1), "seq"),
    (lambda m: m.update(seq=True), "boolean"),
    (lambda m: m["body"].update(name="exploded"), "phase"),
    (lambda m: m["body"].update(progress="half"), "progress"),
    (lambda m: m.update(agent="bad\nname"), "agent"),
])
def test_schema_names_what_is_wrong(mutate, reason: str) -> None:
    msg = event(1)
    schema.validate(msg)
    mutate(msg)
    with pytest.raises(schema.SchemaError, match=reason):
        schema.validate(msg)


def test_events_are_deduplicated_per_session() -> None:
    state = FleetState()
    record, _, _ = state.admit("a1", None, b"r1", time.time())
    assert state.on_event(record, event(1))[0]
    assert state.on_event(record, event(2, phase="converting"))[0]
    assert not state.on_event(record, event(1))[0]  # a resend
    new, outcome = state.on_event(record, event(3, phase="completed"))
    assert new and outcome is not None
    assert (outcome.outcome, outcome.content_type) == ("completed", "audio")
    assert state.on_event(record, event(1, sid="s2"))[0]  # the agent restarted


def test_a_name_stays_with_its_key_until_that_key_is_revoked() -> None:
    authorized = {"KEY-A", "KEY-B"}
    state = FleetState(lambda key: key in authorized)
    state.admit("a1", "KEY-A", b"r1", time.time())
    with pytest.raises(IdentityRefused):
        state.admit("a1", "KEY-B", b"r2", time.time())
    authorized.discard("KEY-A")  # key rotation: the old key is gone, the new one takes over
    record, bound, _ = state.admit("a1", "KEY-B", b"r2", time.time())
    assert bound and record.key == "KEY-B"


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.sqlite", Retention(max_age_s=100, max_events=50))
    now = time.time()
    body = {"scope": "agent", "name": "x"}
    store.record_events([PendingEvent("a1", now, body)] * 30, {}, now=now - 1000)
    store.record_events([PendingEvent("a1", now, body)] * 80, {}, now=now)
    removed = store.apply_retention(now)
    assert removed == 60
    assert store.event_count() == 50
    assert all(e["received"] == now for e in store.events(limit=1000))
    store.close()


def test_controller_context_copies_received_frames() -> None:
    """Set on the context before sockets exist (they read it at creation); frames still flow."""
    ctx = copying_context()
    try:
        assert ctx.get(ZERO_COPY_RECV) == 0
        router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer.connect(f"tcp://127.0.0.1:{port}")
        frames = [bytes([n]) * (40 + n) for n in range(50)]  # above the 33-byte inline size
        for frame in frames:
            dealer.send(frame)
        assert [router.recv_multipart()[1] for _ in frames] == frames
    finally:
        ctx.destroy(linger=0)


def test_status_counts_refused_and_discarded_results_apart() -> None:
    from morag_fleet.controller.views import render_status, status_data

    state = FleetState()
    record, _, _ = state.admit("a1", None, b"r1", time.time())
    state.on_heartbeat(record, {"body": {
        "state": "idle", "slots_used": 0, "slots_total": 2, "active_jobs": [],
        "counters": {"completed": 3, "failed": 1, "refused": 1, "discarded": 1}}})
    data = status_data(state, {})
    row = data["agents"][0]
    assert (row["done"], row["failed"], row["refused"]) == (3, 1, 2)
    assert data["totals"]["refused"] == 2
    header, _rule, line, *_ = render_status(data).splitlines()
    end = header.index("REFUSED") + len("REFUSED")  # numbers are right-aligned under it
    assert line[:end].split()[-1] == "2"
