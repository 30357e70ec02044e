"""An agent's page: what its hello said (version, converters and their self-test verdicts,
slots, GPUs), its host's load, its slots' jobs (live), the drain and resume forms, and the
history of its state changes."""

from __future__ import annotations

from typing import Any

from morag_fleet.controller.web import render as r
from morag_fleet.controller.web.fleet_page import jobs_cell
from morag_fleet.controller.web.render import Viewer, esc


def live_fragment(detail: dict[str, Any], viewer: Viewer) -> str:
    stats = detail["host_stats"]
    memory = stats.get("memory_available_mb")
    cells = [r.agent_state(detail),
             esc(f"{detail['slots_used']}/{detail['slots_total']}"), r.ago(detail["last_seen"]),
             r.percent(stats.get("cpu_percent")), _load(stats.get("load1")),
             r.percent(stats.get("memory_percent")),
             esc(f"{memory:.0f} MB") if isinstance(memory, (int, float)) else "-",
             r.percent(stats.get("disk_percent")), esc(detail["outbox_depth"])]
    status = r.table(("State", "Slots", "Last seen", "CPU", "Load", "Memory", "Memory free",
                      "Disk", "Outbox"), [r.row(cells, state=detail["state"])], "", "status")
    gpus = r.table(("GPU", "Name", "Util", "Memory used", "Memory total", "Temperature"),
                   [r.row([esc(g.get("index", i)), esc(g.get("name")), r.percent(g.get("util")),
                           _mb(g.get("memory_used_mb")), _mb(g.get("memory_total_mb")),
                           esc(f"{g['temperature']} °C") if g.get("temperature") is not None
                           else "-"]) for i, g in enumerate(detail["gpus"])],
                   "no GPU reported", "gpus")
    return (f"{status}<h3>Slots</h3><div class=\"slots\">{jobs_cell(detail, viewer)}</div>"
            f"<h3>GPUs</h3>{gpus}")


def _load(value: Any) -> str:
    return esc(f"{value:.2f}") if isinstance(value, (int, float)) else "-"


def _mb(value: Any) -> str:
    return esc(f"{value:.0f} MB") if isinstance(value, (int, float)) else "-"


def hello_section(detail: dict[str, Any]) -> str:
    selftest = detail["selftest"]
    info = r.table(("Host", "Version", "PID", "Slots", "Heartbeat", "First seen", "Key"),
                   [r.row([esc(detail["host"]), esc(detail["version"]), esc(detail["pid"]),
                           esc(detail["slots_total"]), esc(f"{detail['heartbeat_interval']} s"),
                           r.clock(detail["first_seen"]),
                           esc((detail["key"] or "")[:16] + "…" if detail["key"] else None)])],
                   "", "hello")
    unavailable = detail["unavailable"]
    kinds = sorted(set(detail["content_types"]) | set(detail["converters"]) | set(selftest)
                   | set(unavailable))
    rows = []
    for kind in kinds:
        result = selftest.get(kind) if isinstance(selftest.get(kind), dict) else None
        offered = kind in detail["content_types"]
        if kind in unavailable:
            verdict = "converter unavailable: " + str(unavailable[kind])
        elif result is None:
            verdict = "not run"
        elif result.get("ok", True):
            verdict = "passed" + (f" in {result['seconds']:.1f}s"
                                  if isinstance(result.get("seconds"), (int, float)) else "")
        else:
            verdict = "FAILED: " + str(result.get("reason") or "no reason given")
        rows.append(r.row([esc(kind), esc(detail["converters"].get(kind)),
                           "yes" if offered else "<strong>no</strong>", esc(verdict)],
                          content_type=kind))
    converters = r.table(("Content type", "Converter", "Polled for", "Self-test or why not"),
                         rows,
                         "the agent has not said hello yet", "converters")
    return (f"<section><h2>Hello</h2>{info}<h3>Converters</h3>{converters}"
            "<p class=\"muted\">A type whose converter cannot run on this host, or whose "
            "self-test failed, is not polled for.</p></section>")


def actions_section(detail: dict[str, Any], viewer: Viewer) -> str:
    if not viewer.can_act:
        return ""
    name = detail["agent"]
    drain_fields = (r.hidden("agent", name) +
                    '<label>note <input type="text" name="note" maxlength="500" '
                    'placeholder="draining for driver update, back at 14:00"></label>'
                    '<label>until <input type="text" name="until" maxlength="40" '
                    'placeholder="14:00, 2h or 90m (optional)"></label>')
    drain = viewer.form("/action/drain", drain_fields, "Drain", "drain")
    resume = viewer.form("/action/resume", r.hidden("agent", name), "Resume", "resume")
    return ("<section><h2>Actions</h2><p>Drain: running jobs finish, no new claims. An expiry "
            f"resumes the agent by itself.</p>{drain}{resume}</section>")


def history_section(changes: list[dict[str, Any]]) -> str:
    rows = [r.row([r.clock(c["received"]), esc(c["name"]), r.details(c["body"])])
            for c in changes]
    return ("<section><h2>State changes</h2>" +
            r.table(("Time", "Event", "Details"), rows, "no recorded change", "changes") +
            "</section>")


def agent_body(detail: dict[str, Any], changes: list[dict[str, Any]], viewer: Viewer) -> str:
    return (f'<section><h2>Agent {esc(detail["agent"])}</h2>'
            f'<div id="agent-live">{live_fragment(detail, viewer)}</div></section>'
            f"{actions_section(detail, viewer)}{hello_section(detail)}"
            f"{history_section(changes)}")
