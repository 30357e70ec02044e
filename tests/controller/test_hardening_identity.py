"""With CURVE, a message speaks with the key proven on its own connection: a peer that reuses a
routing id another agent's earlier connection had gets nothing of that agent, and one key speaks
for one agent name unless the operator allows more. (Plaintext proves no keys: any peer may use
any name there, so these rules have nothing to hold on to.)"""

from __future__ import annotations

from pathlib import Path

from tests.controller.fleet import ControllerProc
from tests.controller.hostile import Keys, RawPeer, fleet_controller, heartbeat, hello
from tests.support.process import wait_for

ROUTING_ID = b"chosen-by-the-peer"


def connect_as(controller: ControllerProc, keys: Keys, name: str) -> RawPeer:
    """A peer on ROUTING_ID that the controller heard as `name`. While the controller still
    holds an earlier connection with that id it ignores the new one, so this retries."""
    for _ in range(60):
        peer = RawPeer(controller.endpoint, keys, routing_id=ROUTING_ID)
        peer.send("hello", name, hello(heartbeat_interval=600))  # not lost during the test
        try:
            wait_for(lambda: controller.agent(name), 2, f"{name} on the reused routing id")
            return peer
        except AssertionError:
            peer.close()
    raise AssertionError(f"{name} never got the routing id")


def test_a_reused_routing_id_does_not_speak_with_the_earlier_peers_key(
        short_tmp: Path, cleanup: list) -> None:
    controller, keys = fleet_controller(short_tmp, cleanup, True, ("alpha", "beta"))
    alpha = connect_as(controller, keys["alpha"], "alpha")
    alpha.send("heartbeat", "alpha", heartbeat())
    wait_for(lambda: controller.agent("alpha")["state"] == "idle", 60, "alpha's heartbeat")
    alpha.close()  # alpha goes away; beta (another authorized key) takes its routing id
    beta = connect_as(controller, keys["beta"], "beta")
    try:
        beta.send("heartbeat", "alpha", heartbeat(state="busy", slots_used=2))  # as alpha
        beta.send("heartbeat", "beta", heartbeat(state="busy"))
        wait_for(lambda: controller.agent("beta")["state"] == "busy", 60, "beta's heartbeat")
        # alpha's old routing id now reaches beta: a command for alpha must not go there
        drain = controller.cli("drain", "alpha")
        assert drain.returncode == 1 and "no current connection" in drain.stderr, drain
    finally:
        beta.close()
    assert controller.agent("alpha")["state"] == "idle"
    assert controller.counts().get("rejected:identity") == 1
    names = {a["name"]: a["key_name"] for a in controller.json("agents")}
    assert names == {"alpha": "alpha", "beta": "beta"}


def test_one_key_speaks_for_one_name_until_forgotten_or_allowed_more(
        short_tmp: Path, cleanup: list) -> None:
    controller, keys = fleet_controller(short_tmp, cleanup, True, ("alpha",))
    peer = RawPeer(controller.endpoint, keys["alpha"])
    try:
        peer.send("hello", "alpha", hello())
        wait_for(lambda: controller.agent("alpha"), 60, "alpha")
        peer.send("hello", "alpha-2", hello())
        wait_for(lambda: controller.counts().get("rejected:identity") == 1, 60,
                 "the second name to be refused")
        assert controller.agent("alpha-2") is None
        # the operator retires the old name: the key may use the new one
        assert controller.cli("forget", "alpha").returncode == 0
        peer.send("hello", "alpha-2", hello())
        wait_for(lambda: controller.agent("alpha-2"), 60, "alpha-2 after forget")
        peer.send("hello", "alpha", hello())  # and now the old name is the second one
        wait_for(lambda: controller.counts().get("rejected:identity") == 2, 60,
                 "the old name to be refused")
    finally:
        peer.close()
    controller.stop()

    # the operator allows two names per key (a host running two agents on one key)
    controller.extra += ("--names-per-key", "2")
    controller.start()
    peer = RawPeer(controller.endpoint, keys["alpha"])
    try:
        for name in ("alpha", "alpha-3"):
            peer.send("hello", name, hello())
        wait_for(lambda: controller.agent("alpha") and controller.counts().get(
            "rejected:identity") == 1, 60, "alpha back, alpha-3 refused as a third name")
    finally:
        peer.close()
    assert controller.agent("alpha-3") is None
    assert {a["name"] for a in controller.json("agents")} == {"alpha", "alpha-2"}
