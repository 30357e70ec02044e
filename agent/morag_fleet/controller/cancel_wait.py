"""The CLI's side of a cancel: after the controller sent it, wait for the agent's answer and, when
the agent is cancelling, for the job's failure, so the operator reads one clear sentence about
what happened instead of "sent"."""

from __future__ import annotations

import time
from typing import Any

from morag_fleet.controller.control import ControlClient
from morag_fleet.controller.jobrows import TERMINAL_STATES

POLL_S = 0.3


def wait_for_cancel(client: ControlClient, sent: dict[str, Any], wait: float) -> dict[str, Any]:
    """{ok, outcome, message, ...}: `ok` is True when the job was cancelled (or, with no
    waiting, when the cancel was sent)."""
    job_id, agent = sent["job_id"], sent["agent"]
    result = {**sent, "ok": True, "outcome": "sent",
              "message": f"cancel sent to {agent} (job {job_id} was {sent['phase']})"}
    if wait <= 0:
        return result
    deadline = time.monotonic() + wait
    after = int(sent.get("after") or 0)
    answer: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        for event in client.call("events", job=job_id, after=after, limit=1000):
            after = max(after, event["id"])
            if event["agent"] != agent:
                continue
            if event["name"] == "cancel" and answer is None:
                answer = event["body"]
                if answer.get("outcome") != "cancelling":
                    return {**result, "ok": False, "outcome": answer.get("outcome"),
                            "message": f"job {job_id} was not cancelled: "
                                       f"{answer.get('detail')}"}
            elif event["name"] in TERMINAL_STATES and answer is not None:
                return _ended(result, event)
        time.sleep(POLL_S)
    if answer is None:
        return {**result, "ok": False, "outcome": "no_answer",
                "message": f"cancel sent to {agent}, which did not answer within {wait:g} s; "
                           f"see `morag-fleet events --job {job_id}`"}
    return {**result, "outcome": "cancelling",
            "message": f"job {job_id} is being cancelled on {agent} ({answer.get('detail')}); "
                       f"its failure was not reported within {wait:g} s yet"}


def _ended(result: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    body = event["body"]
    job_id, agent = result["job_id"], result["agent"]
    if event["name"] == "failed":
        return {**result, "outcome": "cancelled", "error": body.get("error"),
                "message": f"job {job_id} cancelled on {agent}; reported failed: "
                           f"{body.get('error')}"}
    return {**result, "ok": False, "outcome": event["name"],
            "message": f"job {job_id} ended as {event['name']} on {agent} before the "
                       f"cancel took effect"}
