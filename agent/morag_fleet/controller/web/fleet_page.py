"""The fleet page: counts by state, the last hour's outcomes by content type, and the agents
table (the columns of `morag-fleet status`, GPU load and memory, and each slot's job). Its
three parts are fragments so the live update sends exactly what the first render drew."""

from __future__ import annotations

import time
from typing import Any

from morag_fleet.controller.web import render as r
from morag_fleet.controller.web.render import Viewer, esc
from morag_fleet.controller.web.snapshot import COUNTED, Snapshot, agent_view

PAGE_SIZE = 100
AGENT_HEADERS = ("Agent", "Host", "State", "Slots", "Active", "Done", "Failed", "Refused",
                 "GPU util", "GPU memory", "Self-test", "Jobs by slot", "Last seen", "Version")


def counts_fragment(snap: Snapshot) -> str:
    cards = "".join(
        f'<div class="card card-{name}" data-count="{name}"><span class="n">'
        f'{snap.counts.get(name, 0)}</span><span class="label">{name}</span></div>'
        for name in COUNTED)
    slots = (f'<div class="card"><span class="n">{snap.slots_used}/{snap.slots_total}</span>'
             '<span class="label">slots busy</span></div>')
    return f'<div class="cards">{cards}{slots}</div>'


def outcomes_fragment(outcomes: dict[str, dict[str, int]]) -> str:
    rows = [r.row([esc(kind), esc(c["completed"]), esc(c["failed"])], content_type=kind)
            for kind, c in sorted(outcomes.items())]
    return r.table(("Content type", "Done", "Failed"), rows,
                   "no job finished in the last hour", "outcomes")


def _gpu_cells(row: dict[str, Any]) -> tuple[str, str]:
    gpus = row["gpus"]
    if not gpus:
        return "-", "-"
    util = "<br>".join(r.percent(g.get("util")) for g in gpus)
    memory = "<br>".join(_memory(g) for g in gpus)
    return util, memory


def _memory(gpu: dict[str, Any]) -> str:
    used, total = gpu.get("memory_used_mb"), gpu.get("memory_total_mb")
    if not (isinstance(used, (int, float)) and isinstance(total, (int, float)) and total):
        return "-"
    return esc(f"{used / 1024:.1f}/{total / 1024:.0f} GiB ({100 * used / total:.0f}%)")


def jobs_cell(row: dict[str, Any], viewer: Viewer) -> str:
    parts = []
    for job in row["jobs"]:
        slot = job.get("slot")
        label = f"slot {slot}" if slot is not None else "slot ?"
        parts.append(f'<div class="job" data-job="{esc(job["job_id"])}">'
                     f'<span class="slot">{esc(label)}</span> {viewer.job_link(job["job_id"])} '
                     f'<span class="muted">{esc(job.get("content_type"))} '
                     f'{esc(job.get("phase"))}</span> {r.progress_bar(job.get("progress"))}</div>')
    return "".join(parts) or '<span class="muted">idle</span>'


def agent_row_html(row: dict[str, Any], viewer: Viewer, now: float) -> str:
    util, memory = _gpu_cells(row)
    cells = [viewer.agent_link(row["agent"]), esc(row["host"]),
             r.agent_state(row),
             esc(f"{row['slots_used']}/{row['slots_total']}"), esc(row["active_jobs"]),
             esc(row["done"]), esc(row["failed"]), esc(row["refused"]), util, memory,
             esc(row.get("selftest")), jobs_cell(row, viewer), r.ago(row["last_seen"], now),
             esc(row["version"])]
    return r.row(cells, agent=row["agent"], state=row["state"])


def agents_fragment(snap: Snapshot, viewer: Viewer, state: str = "", query: str = "",
                    page: int = 0) -> str:
    selected = snap.select(state, query)
    pages = max(1, -(-len(selected) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    now = time.time()
    rows = [agent_row_html(agent_view(rec), viewer, now)
            for rec in selected[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]]
    table = r.table(AGENT_HEADERS, rows, "no agent matches" if state or query
                    else "no agent has connected yet", "agents")
    return table + _pager(len(selected), page, pages, viewer, state, query)


def _pager(total: int, page: int, pages: int, viewer: Viewer, state: str, query: str) -> str:
    if pages <= 1:
        return f'<p class="muted">{total} agent{"s" if total != 1 else ""}</p>'
    links = []
    if page > 0:
        links.append(viewer.link("/", "← previous", state=state, q=query, page=page - 1))
    links.append(f"page {page + 1} of {pages} ({total} agents)")
    if page + 1 < pages:
        links.append(viewer.link("/", "next →", state=state, q=query, page=page + 1))
    return '<p class="pager">' + " · ".join(links) + "</p>"


def filter_form(viewer: Viewer, state: str, query: str) -> str:
    options = "".join(f'<option value="{s}"{" selected" if s == state else ""}>'
                      f'{s or "any state"}</option>' for s in ("", *COUNTED) if s != "online")
    return (f'<form method="get" action="{viewer.url("/")}" class="filters">'
            f'<input type="search" name="q" value="{esc(query) if query else ""}" '
            f'placeholder="agent or host"><select name="state">{options}</select>'
            '<button type="submit">Filter</button></form>')


def fleet_fragments(snap: Snapshot, outcomes: dict[str, dict[str, int]], viewer: Viewer,
                    state: str, query: str, page: int) -> dict[str, str]:
    return {"counts": counts_fragment(snap), "outcomes": outcomes_fragment(outcomes),
            "agents": agents_fragment(snap, viewer, state, query, page)}


def fleet_body(fragments: dict[str, str], viewer: Viewer, state: str, query: str) -> str:
    return (f'<section><h2>Agents by state</h2><div id="counts">{fragments["counts"]}</div>'
            '</section><section><h2>Jobs finished in the last hour</h2>'
            f'<div id="outcomes">{fragments["outcomes"]}</div></section>'
            f'<section><h2>Agents</h2>{filter_form(viewer, state, query)}'
            f'<div id="agents">{fragments["agents"]}</div></section>')
