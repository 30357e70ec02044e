"""The self-test verdict in heartbeats: a controller that never got the agent's hello (it came up
after the agent, or lost its state) still shows why a type is not polled for.

Real parts: a real controller process, a real ZeroMQ DEALER that sends heartbeats and never a
hello (the ack's request for one goes unanswered), the real `morag-fleet` CLI.
"""

from __future__ import annotations

from pathlib import Path

from tests.controller.hostile import RawPeer, fleet_controller, heartbeat
from tests.support.process import wait_for

FAILED = {"audio": {"ok": False, "reason": "cannot load whisper model tiny.en"},
          "document": {"ok": True, "reason": ""}}


def test_heartbeats_alone_carry_the_verdict_to_status_and_agents(short_tmp: Path,
                                                                  cleanup: list) -> None:
    controller, _ = fleet_controller(short_tmp, cleanup, False, ("beats-only",))
    peer = RawPeer(controller.endpoint)
    try:
        peer.send("heartbeat", "beats-only", heartbeat(selftest=FAILED))
        row = wait_for(lambda: controller.agent("beats-only"), 30, "the agent's first heartbeat")
        assert row["selftest"] == "FAIL audio"
        assert row["selftest_failed"] == {"audio": "cannot load whisper model tiny.en"}
        for view in ("status", "agents"):
            lines = controller.cli(view).stdout.splitlines()
            assert any(line.split()[:3] == ["beats-only", "audio", "cannot"]
                       for line in lines), (view, lines)

        # an agent older than the field: its heartbeats say nothing, the verdict stays
        peer.send("heartbeat", "beats-only", heartbeat(counters={"completed": 5}))
        row = wait_for(lambda: (r := controller.agent("beats-only")) and r["done"] == 5 and r,
                       30, "the heartbeat without a verdict")
        assert row["selftest"] == "FAIL audio"

        # a verdict the shortcut does not know (an extra field) goes the full path, same result
        fixed = {"audio": {"ok": True, "reason": "", "seconds": 2.0},
                 "document": FAILED["document"]}
        peer.send("heartbeat", "beats-only", heartbeat(selftest=fixed, counters={"completed": 6}))
        row = wait_for(lambda: (r := controller.agent("beats-only")) and r["done"] == 6 and r,
                       30, "the heartbeat with the new verdict")
        assert row["selftest"] == "ok" and row["selftest_failed"] == {}
        record = next(a for a in controller.json("agents") if a["name"] == "beats-only")
        assert record["selftest"]["audio"] == {"ok": True, "reason": ""}

        # a malformed verdict is refused as a whole, like any bad field
        peer.send("heartbeat", "beats-only",
                  heartbeat(selftest={"audio": {"ok": "no"}}, counters={"completed": 7}))
        wait_for(lambda: controller.counts().get("rejected:schema") == 1, 30, "the rejection")
        assert controller.agent("beats-only")["done"] == 6
    finally:
        peer.close()
