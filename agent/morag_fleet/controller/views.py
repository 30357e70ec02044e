"""What the operator sees: plain data built from the fleet state on the controller (that is what
`--json` prints) and the tables rendered from that same data by the CLI, so both always agree.

Every cell goes through `text.clean` (agents choose host names, versions and event fields, so they
may hold terminal escapes), and the figures are read defensively: a view shows a number it cannot
use as "-" rather than failing for the whole fleet."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from morag_fleet.controller.state import AgentRecord, FleetState, job_view
from morag_fleet.controller.text import clean

# ---- data (built inside the controller) ---------------------------------------------------


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a sum, an age or a percentage can use."""
    return type(value) in (int, float) and math.isfinite(value)


def _figure(gpu: dict[str, Any], key: str) -> int | float:
    value = gpu.get(key)
    return value if is_number(value) else 0


def _gpu_summary(gpus: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [g for g in gpus if isinstance(g, dict) and is_number(g.get("util"))]
    if not usable:
        return None
    return {"count": len(usable),
            "util": round(sum(g["util"] for g in usable) / len(usable), 1),
            "memory_used_mb": sum(_figure(g, "memory_used_mb") for g in usable),
            "memory_total_mb": sum(_figure(g, "memory_total_mb") for g in usable)}


def state_reason(record: AgentRecord) -> str | None:
    """Why an online agent is in its state (a paused agent says "disk full" or "drained")."""
    if record.link != "online":
        return None
    stats = record.host_stats
    reason = stats.get("state_reason") if isinstance(stats, dict) else \
        getattr(stats, "state_reason", None)
    return reason if isinstance(reason, str) and reason else None


def _beat_field(record: AgentRecord, name: str) -> Any:
    stats = record.host_stats
    return stats.get(name) if isinstance(stats, dict) else getattr(stats, name, None)


def drain_info(record: AgentRecord) -> dict[str, Any]:
    """The operator's note and resume time for a drained agent (None when not given)."""
    if record.link != "online":
        return {"drain_note": None, "drain_until": None}
    note, until = _beat_field(record, "drain_note"), _beat_field(record, "drain_until")
    return {"drain_note": note if isinstance(note, str) and note else None,
            "drain_until": until if is_number(until) else None}


def agent_row(record: AgentRecord) -> dict[str, Any]:
    return {"agent": record.name, "host": record.host, "state": record.status,
            "state_reason": state_reason(record), **drain_info(record),
            "slots_used": record.slots_used, "slots_total": record.slots_total,
            "active_jobs": record.job_count if record.link == "online" else 0,
            "done": record.counters.get("completed", 0),
            "failed": record.counters.get("failed", 0),
            "refused": _count(record.counters, "refused") + _count(record.counters, "discarded"),
            "gpu": _gpu_summary(record.gpus),
            "outbox_depth": record.outbox_depth, "last_seen": record.last_seen,
            "version": record.version, "selftest": selftest_summary(record.selftest),
            "selftest_failed": selftest_failures(record.selftest)}


def _count(counters: dict[str, Any], name: str) -> int:
    """A counter as an int; counters are a free-form map on the wire, so anything else is 0."""
    value = counters.get(name, 0)
    return value if type(value) is int else 0


def selftest_failures(selftest: dict[str, Any]) -> dict[str, str]:
    """Content type -> why its self-test failed (the agent does not poll for those types)."""
    return {name: str(result.get("reason") or "failed")
            for name, result in sorted(selftest.items())
            if isinstance(result, dict) and not result.get("ok", True)}


def selftest_summary(selftest: dict[str, Any]) -> str:
    """`ok`, `off` (the agent ran none: turned off, or an agent older than the self-test), or
    `FAIL <types>`."""
    failed = selftest_failures(selftest)
    if failed:
        return "FAIL " + ",".join(failed)
    return "ok" if selftest else "off"


def status_data(state: FleetState, controller: dict[str, Any]) -> dict[str, Any]:
    rows = sorted((agent_row(r) for r in list(state.agents.values())),
                  key=lambda row: row["agent"])
    online = [r for r in rows if r["state"] not in ("lost", "offline", "unknown")]
    totals = {"agents": len(rows), "online": len(online),
              "lost": sum(1 for r in rows if r["state"] == "lost"),
              "slots_used": sum(r["slots_used"] for r in online),
              "slots_total": sum(r["slots_total"] for r in online),
              "active_jobs": sum(r["active_jobs"] for r in rows),
              "done": sum(r["done"] for r in rows), "failed": sum(r["failed"] for r in rows),
              "refused": sum(r["refused"] for r in rows)}
    return {"controller": controller, "agents": rows, "totals": totals}


def agents_data(state: FleetState, key_names: dict[str, str]) -> list[dict[str, Any]]:
    result = []
    for record in sorted(state.agents.values(), key=lambda r: r.name):
        data = record.to_dict()
        data["key_name"] = key_names.get(record.key or "")
        result.append(data)
    return result


def jobs_data(state: FleetState, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    jobs = []
    for record in state.agents.values():
        if record.link != "online":
            continue
        for job in record.jobs.values():
            started = job.get("started_at")
            age = now - started if isinstance(started, (int, float)) else None
            jobs.append({**job_view(job), "agent": record.name, "age": age})
    return sorted(jobs, key=lambda j: (j["agent"], j["job_id"]))


# ---- rendering (in the CLI) -----------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[clean(h) for h in headers]] + [["-" if v is None else clean(v) for v in row]
                                             for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in cells]
    return "\n".join(lines)


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts or not is_number(ts):
        return "never"
    return duration(max(0.0, (time.time() if now is None else now) - ts)) + " ago"


def duration(seconds: float | None) -> str:
    if not is_number(seconds):
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _gpu_cell(gpu: dict[str, Any] | None) -> str:
    if not gpu:
        return "-"
    return (f"{gpu['util']:.0f}% {gpu['memory_used_mb'] / 1024:.1f}/"
            f"{gpu['memory_total_mb'] / 1024:.0f}G")


def _state_cell(row: dict[str, Any]) -> str:
    reason = row.get("state_reason")
    cell = f"{row['state']}: {reason}" if reason else str(row["state"])
    return cell + drain_suffix(row)


def drain_suffix(row: dict[str, Any]) -> str:
    """` (note, until 14:00)` for a drained agent with a note or an end time."""
    parts = []
    if row.get("drain_note"):
        parts.append(str(row["drain_note"]))
    if is_number(row.get("drain_until")):
        parts.append("until " + clock(row["drain_until"]))
    return f" ({', '.join(parts)})" if parts else ""


def clock(ts: float, now: float | None = None) -> str:
    """A local time, with the date when it is not today."""
    now = time.time() if now is None else now
    same_day = time.localtime(ts)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", time.localtime(ts))


def render_status(data: dict[str, Any]) -> str:
    headers = ("AGENT", "HOST", "STATE", "SLOTS", "ACTIVE", "DONE", "FAILED", "REFUSED", "GPU",
               "SELFTEST", "LAST SEEN", "VERSION")
    rows = [(a["agent"], a["host"], _state_cell(a), f"{a['slots_used']}/{a['slots_total']}",
             a["active_jobs"], a["done"], a["failed"], a["refused"], _gpu_cell(a["gpu"]),
             a.get("selftest"), ago(a["last_seen"]), a["version"]) for a in data["agents"]]
    t = data["totals"]
    rows.append((f"TOTAL {t['agents']}", "", f"{t['online']} up, {t['lost']} lost",
                 f"{t['slots_used']}/{t['slots_total']}", t["active_jobs"], t["done"],
                 t["failed"], t["refused"], "", "", "", ""))
    return "\n".join([table(headers, rows), *selftest_lines(data["agents"], "agent")])


def selftest_lines(agents: list[dict[str, Any]], name_key: str) -> list[str]:
    """Why each failed type is not polled for, as a table under the main one (whose cell only
    names the types); nothing when every self-test passed."""
    rows = [(a[name_key], kind, reason)
            for a in agents for kind, reason in (a.get("selftest_failed") or {}).items()]
    return ["", table(("AGENT", "NOT POLLED", "SELF-TEST FAILED BECAUSE"), rows)] if rows else []


def render_agents(agents: list[dict[str, Any]]) -> str:
    headers = ("AGENT", "HOST", "STATE", "KEY", "TYPES", "SELFTEST", "CPU%", "MEM%", "DISK%",
               "OUTBOX", "PID", "FIRST SEEN")
    rows = []
    for a in agents:
        host = a.get("host_stats") or {}
        rows.append((a["name"], a["host"], a["status"] + drain_suffix(a),
                     a.get("key_name") or
                     (a["key"][:8] + "…" if a.get("key") else "-"),
                     ",".join(a.get("content_types") or []) or "-",
                     selftest_summary(a.get("selftest") or {}), host.get("cpu_percent"),
                     host.get("memory_percent"), host.get("disk_percent"), a["outbox_depth"],
                     a.get("pid"), ago(a.get("first_seen"))))
    failed = [{"name": a["name"], "selftest_failed": selftest_failures(a.get("selftest") or {})}
              for a in agents]
    return "\n".join([table(headers, rows), *selftest_lines(failed, "name")])


def render_jobs(jobs: list[dict[str, Any]]) -> str:
    headers = ("JOB", "AGENT", "TYPE", "PHASE", "PROGRESS", "AGE")
    rows = [(j["job_id"], j["agent"], j.get("content_type") or "-", j.get("phase") or "-",
             f"{100 * j['progress']:.0f}%" if is_number(j.get("progress")) else "-",
             duration(j.get("age"))) for j in jobs]
    return table(headers, rows) if rows else "no active jobs"


EVENT_DETAIL_SKIP = ("scope", "name", "job_id", "by")


def event_line(event: dict[str, Any]) -> tuple[str, ...]:
    received = event.get("received")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(received)) \
        if is_number(received) else "-"
    details = " ".join(f"{k}={v}" for k, v in event["body"].items()
                       if k not in EVENT_DETAIL_SKIP)
    return (when, event["agent"], event["name"], event.get("job_id") or "-", details)


def render_events(events: list[dict[str, Any]], header: bool = True) -> str:
    rows = [event_line(e) for e in events]
    if not header:
        return "\n".join("  ".join(clean(cell) for cell in row).rstrip() for row in rows)
    return table(("TIME", "AGENT", "EVENT", "JOB", "DETAILS"), rows) if rows else "no events"
