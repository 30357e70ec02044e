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
                                       selftest={"document": {"ok": False, "reason": SCRIPT}}))
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
    while len(stamps) < 4:
        line = response.fp.readline()
        assert line, "the stream ended"
        if line.startswith(b"event: update"):
            stamps.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(0.5 < gap < 2.0 for gap in gaps), gaps
    assert controller.proc is not None
    controller.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert controller.proc.wait(30) == 0
    assert time.monotonic() - started < 10
    for conn, _ in streams:
        conn.close()
