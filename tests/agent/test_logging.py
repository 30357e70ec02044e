"""Log lines as an agent writes them (JSON, one per event), in a process of their own because
logging is configured once per process."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
from morag_fleet.log import configure_logging, get_logger, register_secret
configure_logging("INFO", "json", worker_id="w-1")
log = get_logger("t")
register_secret("tok-12345")
register_secret("TOK-12345-longer")
log.info("job_claimed", job_id="j1", duration_s=0.5)
log.info("call", error="refused: Authorization: Bearer abc.DEF-1 at tok-12345",
         detail="TOK-12345-longer here", api_key="plain", token=None, count=3)
register_secret("late-secret")
log.warning("later", message="late-secret seen")
log.debug("hidden")
"""


def test_json_lines_with_worker_id_and_secrets_masked() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, check=True)
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["event"] for e in events] == ["job_claimed", "call", "later"]
    claimed, call, later = events
    assert claimed["worker_id"] == "w-1" and claimed["job_id"] == "j1"
    assert claimed["level"] == "info" and claimed["timestamp"].endswith("Z")
    assert call["error"] == "refused: Authorization: Bearer *** at ***"
    assert call["detail"] == "*** here"  # the longer secret is masked whole
    assert call["api_key"] == "***" and call["token"] is None and call["count"] == 3
    assert later["message"] == "*** seen" and later["level"] == "warning"
    assert "tok-12345" not in done.stderr.lower() and "abc.DEF" not in done.stderr
