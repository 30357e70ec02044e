"""The HTTP server itself, against a real controller: agent text is escaped on every page, the
live stream's cadence and its cap, and a controller with open streams still stops at once."""

from __future__ import annotations

import http.client
import itertools
import signal
import time
from pathlib import Path

import requests

from tests.controller.hostile import RawPeer, heartbeat, hello
from tests.dashboard.support import WebController
from tests.support.process import wait_for

SCRIPT = "<script>alert(1)</script>"
NAME = 'evil"><img src=x onerror=alert(2)>'


def test_agent_text_is_escaped_on_every_page(short_tmp: Path, cleanup: list) -> None:
    controller = WebController(short_tmp)
    cleanup.append(controller)
    controller.start()
    peer = RawPeer(controller.endpoint)
    try:
        peer.send("hello", NAME, hello(host=SCRIPT, version=SCRIPT, heartbeat_interval=600,
                                       converters={"document": SCRIPT},
                                       selftest={"document": {"ok": False, "reason": SCRIPT}},
                                       unavailable={"audio": SCRIPT}))
        job = {"job_id": SCRIPT, "content_type": SCRIPT, "phase": SCRIPT, "progress": 0.5}
        peer.send("heartbeat", NAME, heartbeat(state="busy", active_jobs=[job],
                                               state_reason=SCRIPT))
        peer.send("event", NAME, {"scope": "job", "name": "claimed", "job_id": SCRIPT,
                                  "content_type": SCRIPT})
        peer.send("event", NAME, {"scope": "job", "name": "failed", "job_id": SCRIPT,
                                  "error": SCRIPT})
        wait_for(lambda: controller.agent(NAME) is not None, 30, "the hostile agent")
        wait_for(lambda: controller.json("events", "--job", SCRIPT), 30, "its events")
        quoted = requests.utils.quote(NAME, safe="")
        pages = ["/", f"/agent/{quoted}", "/jobs", "/failures",
                 f"/job/{requests.utils.quote(SCRIPT, safe='')}", "/live/fleet?poll=1",
                 f"/live/agent/{quoted}?poll=1"]
        wait_for(lambda: SCRIPT.replace("<", "&lt;").replace(">", "&gt;") in
                 requests.get(controller.url + "/", timeout=10).text, 30, "the host shown")
        for page in pages:
            answer = requests.get(controller.url + page, timeout=10)
            assert answer.status_code == 200, page
            text = answer.text.replace("\\u003c", "<").replace("\\u003e", ">")
            assert "<script>alert" not in text and "<img src=x" not in text, page
            assert "&lt;script&gt;" in text or "&lt;img" in text, page
        page = requests.get(f"{controller.url}/agent/{quoted}", timeout=10).text
        assert "converter unavailable: &lt;script&gt;" in page  # the hello said why not audio
        assert "FAILED: &lt;script&gt;" in page  # and why its document self-test failed
    finally:
        peer.close()


def test_live_stream_cadence_cap_and_a_prompt_stop(short_tmp: Path, cleanup: list) -> None:
    controller = WebController(short_tmp)
    cleanup.append(controller)
    controller.start()
    streams = []
    for _ in range(32):
        conn = http.client.HTTPConnection("127.0.0.1", controller.http_port, timeout=30)
        conn.request("GET", "/live/fleet")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/event-stream"
        streams.append((conn, response))
    over = requests.get(controller.url + "/live/fleet", timeout=10)
    assert over.status_code == 503  # the page's script polls instead
    assert requests.get(controller.url + "/live/fleet?poll=1", timeout=10).status_code == 200
    response = streams[0][1]
    stamps = []
    while len(stamps) < 6:
        line = response.fp.readline()
        assert line, "the stream ended"
        if line.startswith(b"event: update"):
            stamps.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # one a second: never a burst, and on average close to the second even on a busy machine
    assert all(gap > 0.5 for gap in gaps) and sum(gaps) / len(gaps) < 1.6, gaps
    assert controller.proc is not None
    controller.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert controller.proc.wait(30) == 0
    assert time.monotonic() - started < 10
    for conn, _ in streams:
        conn.close()


def test_gpus_pages_and_filters_of_a_bigger_fleet(short_tmp: Path, cleanup: list) -> None:
    """GPU figures arrive in heartbeats as an agent with GPUs sends them (this host has none);
    120 agents fill more than one page of the table."""
    controller = WebController(short_tmp)
    cleanup.append(controller)
    controller.start()
    peer = RawPeer(controller.endpoint)
    gpus = [{"index": 0, "name": "L4", "util": 37, "memory_used_mb": 3072,
             "memory_total_mb": 24576, "temperature": 61},
            {"index": 1, "name": "L4", "util": 90, "memory_used_mb": 20480,
             "memory_total_mb": 24576, "temperature": 80}]
    try:
        for i in range(120):
            name = f"node-{i:03d}"
            peer.send("hello", name, hello(heartbeat_interval=600))
            peer.send("heartbeat", name, heartbeat(gpus=gpus if i == 7 else None,
                                                   state="busy" if i % 2 else "idle"))
        def with_all() -> str | None:
            text = requests.get(controller.url + "/", timeout=10).text
            return text if "(120 agents)" in text else None

        # the page is drawn from a snapshot renewed every second: wait for one with them all
        first = wait_for(with_all, 30, "120 agents on the page")
        assert first.count('<tr data-agent="') == 100 and "page 1 of 2 (120 agents)" in first
        assert first.index('data-agent="node-001"') < first.index('data-agent="node-000"')
        second = requests.get(controller.url + "/?page=1", timeout=10).text
        assert second.count('<tr data-agent="') == 20
        one = requests.get(controller.url + "/", params={"q": "node-007"}, timeout=10).text
        assert one.count('<tr data-agent="') == 1
        assert "37%<br>90%" in one and "3.0/24 GiB (12%)<br>20.0/24 GiB (83%)" in one
        idle = requests.get(controller.url + "/", params={"state": "idle"}, timeout=10).text
        assert idle.count('<tr data-agent="') == 60 and 'data-state="busy"' not in idle
        agent = requests.get(controller.url + "/agent/node-007", timeout=10).text
        assert "61 °C" in agent and "20480 MB" in agent
    finally:
        peer.close()
