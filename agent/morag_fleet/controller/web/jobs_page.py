"""The jobs page (active and recent jobs with filters), a job's own page (its timeline, the
time each phase took, and the cancel form while it runs) and the failures page (recent failures
grouped by reason)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from morag_fleet.controller.web import render as r
from morag_fleet.controller.web.history import JobStory
from morag_fleet.controller.web.render import Viewer, esc

AGES = (("15 min", 900), ("1 hour", 3600), ("6 hours", 21600), ("1 day", 86400),
        ("7 days", 7 * 86400))
STATES = ("running", "completed", "failed", "refused", "discarded")


def parse_age(text: str | None, default: int = 3600) -> int:
    try:
        value = int(text or default)
    except ValueError:
        return default
    return value if value in dict((v, k) for k, v in AGES) else default


def filters_form(viewer: Viewer, path: str, values: dict[str, Any],
                 types: Sequence[str], agents: Sequence[str], with_state: bool) -> str:
    def select(name: str, choices: Sequence[tuple[str, Any]]) -> str:
        opts = "".join(f'<option value="{esc(v) if v != "" else ""}"'
                       f'{" selected" if str(v) == str(values.get(name, "")) else ""}>'
                       f"{esc(label)}</option>" for label, v in choices)
        return f'<label>{esc(name.replace("_", " "))} <select name="{name}">{opts}</select></label>'

    parts = []
    if with_state:
        parts.append(select("state", [("any", ""), *((s, s) for s in STATES)]))
    parts.append(select("type", [("any", ""), *((t, t) for t in types)]))
    parts.append(select("agent", [("any", ""), *((a, a) for a in agents)]))
    parts.append(select("age", list(AGES)))
    return (f'<form method="get" action="{viewer.url(path)}" class="filters">{"".join(parts)}'
            '<button type="submit">Filter</button></form>')


def select_jobs(stories: list[JobStory], state: str, kind: str, agent: str) -> list[JobStory]:
    return [s for s in stories if (not state or s.state == state)
            and (not kind or s.content_type == kind) and (not agent or s.agent == agent)]


def job_row(story: JobStory, viewer: Viewer) -> str:
    phases = story.phase_durations()
    progress = r.progress_bar(story.progress) if story.state == "running" else ""
    cells = [viewer.job_link(story.job_id), viewer.agent_link(story.agent),
             esc(story.content_type), r.state_badge(story.state),
             esc(story.phase) + " " + progress, r.clock(story.started),
             r.seconds(story.duration), r.seconds(phases["download"]),
             r.seconds(phases["convert"]), r.seconds(phases["deliver"]), esc(story.error)]
    return r.row(cells, job=story.job_id, state=story.state)


JOB_HEADERS = ("Job", "Agent", "Type", "State", "Phase", "Started", "Duration", "Download",
               "Convert", "Deliver", "Error")


def jobs_body(stories: list[JobStory], viewer: Viewer, values: dict[str, Any],
              types: Sequence[str], agents: Sequence[str]) -> str:
    rows = [job_row(s, viewer) for s in stories]
    return (f"<section><h2>Jobs</h2>{filters_form(viewer, '/jobs', values, types, agents, True)}"
            f'<div id="jobs">{r.table(JOB_HEADERS, rows, "no job matches", "jobs")}</div>'
            f'<p class="muted">{len(rows)} job{"s" if len(rows) != 1 else ""}</p></section>')


def job_body(story: JobStory, viewer: Viewer) -> str:
    phases = story.phase_durations()
    summary = r.table(("Agent", "Type", "State", "Started", "Duration", "Download", "Convert",
                       "Deliver", "Error"),
                      [r.row([viewer.agent_link(story.agent), esc(story.content_type),
                              r.state_badge(story.state), r.clock(story.started),
                              r.seconds(story.duration), r.seconds(phases["download"]),
                              r.seconds(phases["convert"]), r.seconds(phases["deliver"]),
                              esc(story.error)])], "", "summary")
    timeline = r.table(("Time", "Agent", "Event", "Progress", "Details"),
                       [r.row([r.clock(e["ts"]), esc(e["agent"]), esc(e["name"]),
                               r.progress_bar(e["body"].get("progress"))
                               if e["body"].get("progress") is not None else "",
                               r.details(e["body"])]) for e in story.events],
                       "no events", "timeline")
    return (f"<section><h2>Job {esc(story.job_id)}</h2>{summary}</section>"
            f"{cancel_section(story, viewer)}<section><h2>Timeline</h2>{timeline}</section>")


def cancel_section(story: JobStory, viewer: Viewer) -> str:
    if story.state != "running" or not viewer.can_act:
        return ""
    fields = (r.hidden("job", story.job_id) + '<label>note <input type="text" name="note" '
              'maxlength="500" placeholder="why (sent to MoRAG with the failure)"></label>')
    form = viewer.form("/action/cancel", fields, "Cancel this job", "danger")
    return ("<section><h2>Cancel</h2><p>The job's slot is stopped (SIGTERM, then SIGKILL) and "
            "the job is reported to MoRAG as failed, cancelled by an operator; the agent keeps "
            f"working.</p>{form}</section>")


def failures_body(stories: list[JobStory], viewer: Viewer, values: dict[str, Any],
                  types: Sequence[str], agents: Sequence[str]) -> str:
    groups: dict[str, list[JobStory]] = {}
    for story in stories:
        if story.state in ("failed", "refused", "discarded"):
            groups.setdefault((story.error or story.state)[:300], []).append(story)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    rows = [r.row([esc(reason), esc(len(items)), _tally(s.agent for s in items),
                   _tally(s.content_type or "unknown" for s in items),
                   r.clock(max((s.ended or 0) for s in items)),
                   " ".join(viewer.job_link(s.job_id) for s in items[:5])], reason=reason)
            for reason, items in ordered]
    form = filters_form(viewer, "/failures", values, types, agents, False)
    return (f"<section><h2>Failures by reason</h2>{form}<div id=\"failures\">"
            + r.table(("Reason", "Jobs", "Agents", "Content types", "Last", "Recent jobs"),
                      rows, "no failure in this window", "failures") + "</div></section>")


def _tally(names: Any) -> str:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return esc(", ".join(f"{n} (x{c})" if c > 1 else n for n, c in sorted(counts.items())))
