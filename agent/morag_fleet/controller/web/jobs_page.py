"""The jobs page (active and recent jobs with filters), a job's own page (its timeline, the
time each phase took, and the cancel form while it runs) and the failures page (recent failures
grouped by reason class). All of it comes from the controller's job history
(`controller.history`), so the pages, the CLI and the metrics share one definition of a phase
and of a failure's reason."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from morag_fleet.controller import views
from morag_fleet.controller.web import render as r
from morag_fleet.controller.web.render import Viewer, esc

AGES = (("15 min", 900), ("1 hour", 3600), ("6 hours", 21600), ("1 day", 86400),
        ("7 days", 7 * 86400))
STATES = (("any", ""), ("active", "active"), ("completed", "completed"), ("failed", "failed"),
          ("refused by the server", "result_refused"),
          ("discarded by the server", "result_discarded"))
PHASES = ("wait", "download", "convert", "deliver")
JOB_LIMIT = 500


def parse_age(text: str | None, default: int) -> int:
    try:
        value = int(text or default)
    except ValueError:
        return default
    return value if value in {v for _, v in AGES} else default


def _select(name: str, label: str, choices: Sequence[tuple[str, Any]], value: Any) -> str:
    options = "".join(f'<option value="{esc(v) if v != "" else ""}"'
                      f'{" selected" if str(v) == str(value) else ""}>{esc(text)}</option>'
                      for text, v in choices)
    return f'<label>{esc(label)} <select name="{name}">{options}</select></label>'


def filters_form(viewer: Viewer, values: dict[str, Any], types: Sequence[str],
                 agents: Sequence[str]) -> str:
    parts = [_select("state", "state", STATES, values["state"]),
             _select("type", "content type", [("any", ""), *((t, t) for t in types)],
                     values["type"]),
             _select("agent", "agent", [("any", ""), *((a, a) for a in agents)],
                     values["agent"]),
             _select("age", "updated within", AGES, values["age"])]
    return (f'<form method="get" action="{viewer.url("/jobs")}" class="filters">'
            f'{"".join(parts)}<button type="submit">Filter</button></form>')


def state_cell(job: dict[str, Any]) -> str:
    if not job["active"]:
        return r.state_badge(job["state"].removeprefix("result_"))
    return r.state_badge("running", job["state"]) + " " + r.progress_bar(job.get("progress"))


def duration(job: dict[str, Any]) -> Any:
    if views.is_number(job.get("duration_s")):
        return job["duration_s"]
    start, end = job.get("claimed"), job.get("finished") or (time.time() if job["active"]
                                                              else job.get("updated"))
    return end - start if views.is_number(start) and views.is_number(end) else None


def job_row(job: dict[str, Any], viewer: Viewer) -> str:
    cells = [viewer.job_link(job["job_id"]), viewer.agent_link(job["agent"]),
             esc(job.get("content_type")), state_cell(job), r.clock(job.get("claimed")),
             r.seconds(duration(job)), r.seconds(job.get("download_s")),
             r.seconds(job.get("convert_s")), r.seconds(job.get("deliver_s")),
             esc(job.get("error"))]
    return r.row(cells, job=job["job_id"], state=job["state"])


JOB_HEADERS = ("Job", "Agent", "Type", "State", "Claimed", "Duration", "Download", "Convert",
               "Deliver", "Error")


def jobs_body(jobs: list[dict[str, Any]], viewer: Viewer, values: dict[str, Any],
              types: Sequence[str], agents: Sequence[str]) -> str:
    rows = [job_row(job, viewer) for job in jobs]
    more = f" (the newest {JOB_LIMIT})" if len(rows) >= JOB_LIMIT else ""
    return (f"<section><h2>Jobs</h2>{filters_form(viewer, values, types, agents)}"
            f'<div id="jobs">{r.table(JOB_HEADERS, rows, "no job matches", "jobs")}</div>'
            f'<p class="muted">{len(rows)} job{"s" if len(rows) != 1 else ""}{more}</p>'
            "</section>")


def job_body(timeline: dict[str, Any], viewer: Viewer) -> str:
    job, phases = timeline["job"], timeline["phases"]
    summary = r.table(("Agent", "Type", "State", "Claimed", "Duration",
                       *(p.capitalize() for p in PHASES), "Error"),
                      [r.row([viewer.agent_link(job["agent"]), esc(job.get("content_type")),
                              state_cell(job), r.clock(job.get("claimed")),
                              r.seconds(duration(job)),
                              *(r.seconds(phases.get(p)) for p in PHASES),
                              esc(job.get("error"))], state=job["state"])], "", "summary")
    events = r.table(("Time", "Agent", "Event", "Progress", "Error", "Details"),
                     [r.row([r.clock(e["ts"]), esc(e["agent"]), esc(_event_name(e)),
                             r.progress_bar(e["progress"]) if e.get("progress") is not None
                             else "", esc(e.get("error")) if e.get("error") else "",
                             r.details(e.get("detail") or {})], event=e["name"])
                      for e in timeline["events"]], "no events", "timeline")
    return (f"<section><h2>Job {esc(job['job_id'])}</h2>{summary}</section>"
            f"{cancel_section(job, viewer)}<section><h2>Timeline</h2>{events}</section>")


def _event_name(event: dict[str, Any]) -> str:
    updates = event.get("updates") or 0
    return f"{event['name']} ({updates} more updates)" if updates else str(event["name"])


def cancel_section(job: dict[str, Any], viewer: Viewer) -> str:
    if not job["active"] or not viewer.can_act:
        return ""
    fields = (r.hidden("job", job["job_id"]) + '<label>note <input type="text" name="note" '
              'maxlength="500" placeholder="why (sent to MoRAG with the failure)"></label>')
    form = viewer.form("/action/cancel", fields, "Cancel this job", "danger")
    return ("<section><h2>Cancel</h2><p>The job's slot is stopped (SIGTERM, then SIGKILL) and "
            "the job is reported to MoRAG as failed, cancelled by an operator; the agent keeps "
            f"working.</p>{form}</section>")


def failures_body(groups: list[dict[str, Any]], recent: list[dict[str, Any]], viewer: Viewer,
                  age: int) -> str:
    rows = [r.row([esc(g["reason"]), esc(g["count"]), _tally(g["agents"]),
                   _tally(g["content_types"]), r.clock(g.get("last")), esc(g.get("example")),
                   viewer.job_link(g["example_job"]) if g.get("example_job") else "-"],
                  reason=g["reason"]) for g in groups]
    form = (f'<form method="get" action="{viewer.url("/failures")}" class="filters">'
            f'{_select("age", "within", AGES, age)}<button type="submit">Show</button></form>')
    latest = [job_row(job, viewer) for job in recent]
    return ("<section><h2>Failures by reason</h2>" + form + '<div id="failures">'
            + r.table(("Reason", "Jobs", "Agents", "Content types", "Last", "Example",
                       "Example job"), rows, "no failure in this window", "failures")
            + "</div></section><section><h2>Recent failures</h2>"
            + r.table(JOB_HEADERS, latest, "none", "jobs recent-failures") + "</section>")


def _tally(counts: dict[str, int]) -> str:
    return esc(", ".join(f"{name} (x{n})" if n > 1 else name
                         for name, n in sorted(counts.items())))
