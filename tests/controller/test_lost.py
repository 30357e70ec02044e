"""An agent killed with SIGKILL is marked lost after three missed heartbeats, a live one is not."""

from __future__ import annotations

from pathlib import Path

from tests.controller.fleet import ControllerProc, PublisherProc
from tests.support.process import wait_for

INTERVAL = 0.5


def test_killed_agent_is_lost_within_three_intervals_and_live_one_stays(
        short_tmp: Path, cleanup: list) -> None:
    controller = ControllerProc(short_tmp)
    cleanup.append(controller.start())
    doomed = PublisherProc(short_tmp, "doomed", controller.endpoint, interval=INTERVAL)
    alive = PublisherProc(short_tmp, "alive", controller.endpoint, interval=INTERVAL)
    cleanup += [doomed, alive]
    wait_for(lambda: controller.agent("doomed") and controller.agent("alive"), 60, "both agents")
    doomed.kill()
    wait_for(lambda: controller.agent("doomed")["state"] == "lost", 60, "doomed to be lost")
    lost = [e for e in controller.json("events", "--agent", "doomed") if e["name"] == "lost"]
    assert len(lost) == 1
    last_seen = controller.agent("doomed")["last_seen"]
    # judged by the controller's own clock: declared after 3 intervals of silence, and not
    # much later (its check runs every 0.5 s; 2 s of slack for a loaded machine)
    silence = lost[0]["received"] - last_seen
    assert 3 * INTERVAL < silence <= 3 * INTERVAL + 2.0
    assert controller.agent("alive")["state"] == "idle"
    status = controller.json("status")
    assert status["totals"]["lost"] == 1
    assert status["totals"]["online"] == 1
    assert "1 up, 1 lost" in controller.cli("status").stdout
