"""`morag-fleet history`, `job` and `failures`: the controller's job history in the terminal, the
same data the dashboard pages show (`--json` prints it as the controller sends it)."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

from morag_fleet.controller.control import ControlError, ControllerUnavailable
from morag_fleet.controller.text import json_text, screen
from morag_fleet.controller.views import duration, is_number, table

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def age_seconds(text: str) -> float:
    """"90m", "2h", "7d" as seconds (argparse type)."""
    match = _AGE.match(text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use a duration such as 30m, 2h or 7d")
    return float(match[1]) * _UNIT[match[2]]


def register(subparsers: Any, common: Callable[..., None], run: Callable[..., int]) -> None:
    p = subparsers.add_parser("history", help="active and recent jobs, newest first, with "
                              "filters (kept across controller restarts)")
    common(p, watch=False)
    p.add_argument("--state", default=None,
                   help="active, finished, or a state: completed, failed, converting...")
    p.add_argument("--type", dest="content_type", default=None, help="only this content type")
    p.add_argument("--agent", default=None, help="only jobs of this agent")
    p.add_argument("--since", type=age_seconds, default=None, metavar="AGE",
                   help="only jobs with news within AGE (30m, 2h, 7d)")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=run, request=lambda a: ("history", {
        "state": a.state, "content_type": a.content_type, "agent": a.agent,
        "max_age": a.since, "limit": a.limit}), render=render_history)
    p = subparsers.add_parser("job", help="one job's timeline and the time of each phase")
    common(p, watch=False)
    p.add_argument("job", help="the job id")
    p.set_defaults(func=run, request=lambda a: ("job", {"job": a.job}), render=render_timeline)
    p = subparsers.add_parser("failures", help="recent failures grouped by reason, with the "
                              "agents and content types")
    common(p, watch=False)
    p.add_argument("--since", type=age_seconds, default=86400.0, metavar="AGE",
                   help="how far back (default 1d)")
    p.set_defaults(func=run, request=lambda a: ("failures", {"max_age": a.since}),
                   render=render_failures)


def cmd_history(args: argparse.Namespace, client: Any, fail: Callable[[Exception], int]) -> int:
    command, request = args.request(args)
    try:
        data = client.call(command, **request)
    except (ControllerUnavailable, ControlError, ValueError) as exc:
        return fail(exc)
    print(json_text(data, indent=2) if args.json else screen(args.render(data)))
    return 0


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if is_number(ts) else "-"


def _percent(value: Any) -> str:
    return f"{100 * value:.0f}%" if is_number(value) else "-"


def render_history(jobs: list[dict[str, Any]]) -> str:
    headers = ("JOB", "AGENT", "TYPE", "STATE", "PROGRESS", "UPDATED", "TOOK", "REASON")
    rows = [(j["job_id"], j["agent"], j.get("content_type") or "-", j["state"],
             _percent(j.get("progress")) if j.get("active") else "-", _when(j.get("updated")),
             duration(j.get("duration_s")), j.get("reason") or "") for j in jobs]
    return table(headers, rows) if rows else "no jobs in the history"


def render_timeline(data: dict[str, Any]) -> str:
    job = data.get("job")
    if job is None and not data.get("events"):
        return "the controller has no history of this job"
    lines = []
    if job is not None:
        lines.append(f"job {job['job_id']}  {job.get('content_type') or '-'}  {job['state']} "
                     f"on {job['agent']}" + (f": {job['error']}" if job.get("error") else ""))
    rows = []
    for event in data.get("events") or []:
        detail = " ".join(f"{k}={v}" for k, v in (event.get("detail") or {}).items())
        if event.get("error"):
            detail = f"error={event['error']} {detail}".strip()
        rows.append((_when(event.get("ts")), event["agent"], event["name"],
                     _percent(event.get("progress")), detail))
    lines.append(table(("TIME", "AGENT", "EVENT", "PROGRESS", "DETAILS"), rows))
    phases = data.get("phases") or {}
    lines.append("phases: " + "  ".join(f"{name} {duration(seconds)}"
                                        if is_number(seconds) and seconds >= 1 else
                                        f"{name} {seconds:.2f}s" if is_number(seconds) else
                                        f"{name} -" for name, seconds in phases.items()))
    return "\n".join(lines)


def render_failures(data: dict[str, Any]) -> str:
    groups = data.get("groups") or []
    if not groups:
        return "no failures"
    rows = [(g["reason"], g["count"], _counts(g["agents"]), _counts(g["content_types"]),
             _when(g.get("last")), (g.get("example") or "")[:80]) for g in groups]
    return table(("REASON", "COUNT", "AGENTS", "TYPES", "LAST", "EXAMPLE"), rows)


def _counts(counts: dict[str, int]) -> str:
    return ",".join(f"{name}:{n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
