"""Text an agent chooses (host, version, event fields, job fields) never acts on the operator's
terminal: every text view shows control characters as visible escapes, and JSON keeps the text
exactly as sent."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from morag_fleet.controller.text import clean, screen
from tests.controller.hostile import RawPeer, fleet_controller, heartbeat, hello, strict_json
from tests.support.process import wait_for

HOST = "\x1b[2J\x1b[31mevil-host"
VERSION = "1.0\x1b]0;retitled\x07"
DETAIL = "done\r\n2099-01-01 00:00:00  a1  completed  fake\x1b[0m"
CONTENT_TYPE = "\x9b31mdocument"  # a C1 CSI: some terminals act on it like ESC [
PHASE = "\u202econverting"  # a bidirectional override reorders what follows


def shown_safely(text: str) -> bool:
    """No control or format character but the line breaks between rows."""
    return not any(unicodedata.category(char) in ("Cc", "Cf") for char in text.replace("\n", ""))


def test_clean_escapes_what_is_not_printable_and_leaves_the_rest() -> None:
    assert clean(HOST) == "\\x1b[2J\\x1b[31mevil-host"
    assert clean(CONTENT_TYPE) == "\\x9b31mdocument"
    assert clean(PHASE) == "\\u202econverting"
    assert clean("größe 10% ok") == "größe 10% ok"
    assert clean(5) == "5"
    assert screen("a\x1b[2J\nb") == "a\\x1b[2J\nb"


@pytest.mark.parametrize("curve", [False, True], ids=["plaintext", "curve"])
def test_agent_text_reaches_the_terminal_only_as_visible_escapes(
        short_tmp: Path, cleanup: list, curve: bool) -> None:
    controller, keys = fleet_controller(short_tmp, cleanup, curve, ("esc",))
    peer = RawPeer(controller.endpoint, keys["esc"])
    job = {"job_id": "j1", "content_type": CONTENT_TYPE, "phase": PHASE, "progress": 0.5}
    try:
        peer.send("hello", "esc", hello(host=HOST, version=VERSION, heartbeat_interval=600))
        peer.send("event", "esc", {"scope": "agent", "name": "note", "detail": DETAIL})
        peer.send("event", "esc", {"scope": "job", "name": "claimed", "job_id": "j1",
                                   "content_type": CONTENT_TYPE})
        peer.send("heartbeat", "esc", heartbeat(state="busy", active_jobs=[job]))
        wait_for(lambda: (controller.agent("esc") or {}).get("state") == "busy", 60,
                 "the agent's heartbeat")
        wait_for(lambda: len(controller.json("events", "--agent", "esc")) >= 3, 60,
                 "the agent's events")
    finally:
        peer.close()

    for view in ("status", "agents", "jobs", "events"):
        result = controller.cli(view)
        assert result.returncode == 0, result.stderr
        assert shown_safely(result.stdout), (view, result.stdout)
    assert "\\x1b[2J\\x1b[31mevil-host" in controller.cli("status").stdout
    assert "\\x1b]0;retitled\\x07" in controller.cli("status").stdout
    jobs = controller.cli("jobs").stdout
    assert "\\x9b31mdocument" in jobs and "\\u202econverting" in jobs
    events = controller.cli("events", "--agent", "esc").stdout
    assert "detail=done\\x0d\\x0a2099-01-01" in events
    assert len(events.splitlines()) == 1 + 3  # the header and one line per event, none faked

    # JSON is faithful: the same text, escaped the way JSON escapes it
    status = strict_json(controller.cli("status", "--json").stdout)
    row = next(a for a in status["agents"] if a["agent"] == "esc")
    assert (row["host"], row["version"]) == (HOST, VERSION)
    assert strict_json(controller.cli("jobs", "--json").stdout)[0]["phase"] == PHASE
    notes = [e for e in strict_json(controller.cli("events", "--json").stdout)
             if e["name"] == "note"]
    assert notes[0]["body"]["detail"] == DETAIL
    for view in ("status", "agents", "jobs", "events"):
        assert shown_safely(controller.cli(view, "--json").stdout)
