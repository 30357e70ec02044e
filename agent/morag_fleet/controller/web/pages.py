"""Which page answers which path, and the actions behind the POST forms."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from morag_fleet.controller.web import agent_page, fleet_page, jobs_page
from morag_fleet.controller.web.actions import ActionFailed
from morag_fleet.controller.web.guard import SESSION_COOKIE, SESSION_TTL_S, Session, WriteRefused
from morag_fleet.controller.web.render import Viewer, esc
from morag_fleet.controller.web.snapshot import COUNTED, agent_detail, running_jobs
from morag_fleet.log import get_logger

if TYPE_CHECKING:
    from morag_fleet.controller.web.handler import Handler

log = get_logger(__name__)

STATIC_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


def serve_get(h: Handler, path: str, query: dict[str, str]) -> None:
    app = h.app
    if path == "/metrics":
        h.metrics()
        return
    if path == "/favicon.ico":
        h.send_bytes(204, b"", "image/x-icon", {"Cache-Control": "max-age=86400"})
        return
    if path.startswith("/static/") and path[8:] in app.static:
        name = path[8:]
        h.send_bytes(200, app.static[name].encode(), STATIC_TYPES[name.rsplit(".", 1)[1]],
                     {"Cache-Control": "max-age=300"})
        return
    viewer = app.viewer(h.current_session())
    routes = {"/": fleet, "/jobs": jobs, "/failures": failures, "/login": login_page,
              "/live/fleet": live_fleet}
    if path in routes:
        routes[path](h, viewer, query)
    elif path.startswith("/agent/"):
        agent(h, viewer, path[7:], query)
    elif path.startswith("/live/agent/"):
        live_agent(h, viewer, path[12:], query)
    elif path.startswith("/job/"):
        job(h, viewer, path[5:])
    else:
        not_found(h, viewer, "There is no such page.")


def not_found(h: Handler, viewer: Viewer, text: str) -> None:
    h.send_html(404, h.app.page("Not found", f"<section><p>{esc(text)}</p></section>", viewer))


# ---- fleet --------------------------------------------------------------------------------


def _fleet_args(query: dict[str, str]) -> tuple[str, str, int]:
    """(state, name filter, page), each bounded: they key the shared drawings."""
    try:
        page = min(max(int(query.get("page") or 0), 0), 10_000)
    except ValueError:
        page = 0
    state = query.get("state", "")
    return state if state in COUNTED else "", query.get("q", "")[:100], page


def fleet(h: Handler, viewer: Viewer, query: dict[str, str]) -> None:
    state, text, page = _fleet_args(query)
    fragments = h.app.fleet_fragments(state, text, page)
    live = viewer.url("/live/fleet", state=state, q=text, page=page or None)
    h.send_html(200, h.app.page("Fleet", fleet_page.fleet_body(fragments, viewer, state, text),
                                viewer, "fleet", live))


def live_fleet(h: Handler, viewer: Viewer, query: dict[str, str]) -> None:
    state, text, page = _fleet_args(query)

    def build() -> dict[str, str]:
        return h.app.fleet_fragments(state, text, page)

    _live(h, build, query)


def _live(h: Handler, build: Any, query: dict[str, str]) -> None:
    if query.get("poll"):
        h.send_json(200, {"html": build(), "stamp": time.time()})
    else:
        h.stream(build)


# ---- agents -------------------------------------------------------------------------------


def agent(h: Handler, viewer: Viewer, name: str, query: dict[str, str]) -> None:
    record = h.app.state.agents.get(name)
    if record is None:
        not_found(h, viewer, f"No agent named {name} is known to this controller.")
        return
    body = agent_page.agent_body(agent_detail(record), h.app.history.agent_history(name),
                                 viewer)
    live = viewer.url("/live/agent/" + quote(name, safe=""))
    h.send_html(200, h.app.page(f"Agent {name}", body, viewer, "", live))


def live_agent(h: Handler, viewer: Viewer, name: str, query: dict[str, str]) -> None:
    def build() -> dict[str, str]:
        record = h.app.state.agents.get(name)
        if record is None:
            return {"agent-live": "<p>This agent is no longer known to the controller.</p>"}
        return {"agent-live": agent_page.live_fragment(agent_detail(record), viewer)}

    _live(h, build, query)


# ---- jobs and failures --------------------------------------------------------------------


def _overlay_live_progress(h: Handler, jobs: list[dict[str, Any]]) -> None:
    """Heartbeats carry fresher progress than the last stored event."""
    for job in jobs:
        record = h.app.state.agents.get(job["agent"])
        if not job["active"] or record is None:
            continue
        for live in running_jobs(record):
            if live["job_id"] == job["job_id"] and live.get("progress") is not None:
                job["progress"] = live["progress"]


def jobs(h: Handler, viewer: Viewer, query: dict[str, str]) -> None:
    values = {"state": query.get("state", ""), "type": query.get("type", ""),
              "agent": query.get("agent", ""),
              "age": jobs_page.parse_age(query.get("age"), 3600)}
    found = h.app.history.jobs(values["state"] or None, values["type"] or None,
                               values["agent"] or None, values["age"], jobs_page.JOB_LIMIT)
    _overlay_live_progress(h, found)
    records = list(h.app.state.agents.values())
    types = sorted({t for rec in records for t in list(rec.content_types)}
                   | {j["content_type"] for j in found if j.get("content_type")})
    agents = sorted({rec.name for rec in records} | {j["agent"] for j in found})
    body = jobs_page.jobs_body(found, viewer, values, types, agents)
    h.send_html(200, h.app.page("Jobs", body, viewer, "jobs"))


def failures(h: Handler, viewer: Viewer, query: dict[str, str]) -> None:
    age = jobs_page.parse_age(query.get("age"), 86400)
    groups = h.app.history.failures(age)
    recent = h.app.history.recent_failures(age, 50)
    body = jobs_page.failures_body(groups, recent, viewer, age)
    h.send_html(200, h.app.page("Failures", body, viewer, "failures"))


def job(h: Handler, viewer: Viewer, job_id: str) -> None:
    timeline = h.app.history.job_timeline(job_id)
    if timeline["job"] is None:
        not_found(h, viewer, f"Job {job_id} is not in the controller's history.")
        return
    _overlay_live_progress(h, [timeline["job"]])
    body = jobs_page.job_body(timeline, viewer)
    h.send_html(200, h.app.page(f"Job {job_id}", body, viewer, "jobs"))


# ---- signing in and actions ---------------------------------------------------------------


def login_page(h: Handler, viewer: Viewer, query: dict[str, str], error: str = "") -> None:
    if viewer.read_only:
        body = "<section><p>There is nothing to sign in to: this dashboard is read-only.</p>" \
               "</section>"
    else:
        problem = f'<p class="error">{esc(error)}</p>' if error else ""
        body = (f'<section><h2>Sign in</h2>{problem}<form method="post" '
                f'action="{viewer.url("/login")}" class="action login"><label>dashboard token '
                '<input type="password" name="token" autocomplete="current-password" '
                'required></label><button type="submit">Sign in</button></form>'
                "<p class=\"muted\">The token is in the file given to the controller with "
                "<code>--dashboard-token-file</code>.</p></section>")
    h.send_html(403 if error else 200, h.app.page("Sign in", body, viewer))


def sign_in(h: Handler, form: dict[str, str]) -> None:
    origin = h.headers.get("Origin")
    viewer = h.app.viewer(None)
    try:
        if origin and origin.split("//", 1)[-1] not in (h.headers.get("Host"),
                                                        h.headers.get("X-Forwarded-Host")):
            raise WriteRefused(403, "the request came from another site")
        session = h.app.guard.sign_in(form.get("token"))
    except WriteRefused as exc:
        log.warning("http_sign_in_refused", reason=exc.reason)
        login_page(h, viewer, {}, exc.reason)
        return
    h.redirect(viewer.prefix + "/", {"Set-Cookie": _cookie(h, session.sid, SESSION_TTL_S)})


def _cookie(h: Handler, value: str, max_age: int) -> str:
    secure = "; Secure" if h.headers.get("X-Forwarded-Proto") == "https" else ""
    return (f"{SESSION_COOKIE}={value}; Path={h.app.prefix or '/'}; Max-Age={max_age}; "
            f"HttpOnly; SameSite=Strict{secure}")


def serve_post(h: Handler, path: str, form: dict[str, str], session: Session | None) -> None:
    viewer = h.app.viewer(session)
    if path == "/logout":
        h.app.guard.sign_out(session.sid if session else None)
        h.redirect(viewer.prefix + "/", {"Set-Cookie": _cookie(h, "", 0)})
        return
    actions = {"/action/drain": _drain, "/action/resume": _resume, "/action/cancel": _cancel}
    if path not in actions:
        not_found(h, viewer, "There is no such action.")
        return
    try:
        message, back, data = actions[path](h, form)
    except ActionFailed as exc:
        _answer(h, viewer, 409, f"Not done: {exc}", form, None)
        return
    _answer(h, viewer, 200, message, form, data, back)


def _drain(h: Handler, form: dict[str, str]) -> tuple[str, str, Any]:
    name = form.get("agent", "")
    note, until = form.get("note", "").strip(), form.get("until", "").strip()
    data = h.app.actions.drain(name, note, until or None)
    extra = (f" with the note “{note}”" if note else "") + (f" until {until}" if until else "")
    return f"Drain sent to {name}{extra}.", "/agent/" + quote(name, safe=""), data


def _resume(h: Handler, form: dict[str, str]) -> tuple[str, str, Any]:
    name = form.get("agent", "")
    data = h.app.actions.resume(name)
    return f"Resume sent to {name}.", "/agent/" + quote(name, safe=""), data


def _cancel(h: Handler, form: dict[str, str]) -> tuple[str, str, Any]:
    job_id = form.get("job", "")
    data = h.app.actions.cancel(job_id, form.get("note", "").strip())
    return (f"Cancel sent for job {job_id}; it is reported to MoRAG as failed once its slot "
            "has stopped.", "/job/" + quote(job_id, safe=""), data)


def _answer(h: Handler, viewer: Viewer, status: int, message: str, form: dict[str, str],
            data: Any, back: str = "/") -> None:
    if h.headers.get("Authorization"):  # a script: JSON, as the control API answers
        h.send_json(status, {"ok": status == 200, "message": message, "data": data})
        return
    css = "done" if status == 200 else "error"
    body = (f'<section><p class="result {css}" id="result">{esc(message)}</p>'
            f'<p>{viewer.link(back, "Back")}</p></section>')
    h.send_html(status, h.app.page("Action", body, viewer))


def refused(h: Handler, exc: WriteRefused) -> None:
    if h.headers.get("Authorization") or h.headers.get("Accept") == "application/json":
        h.send_json(exc.status, {"ok": False, "error": exc.reason})
        return
    viewer = h.app.viewer(None)
    body = f'<section><p class="result error" id="result">Refused: {esc(exc.reason)}</p></section>'
    h.send_html(exc.status, h.app.page("Refused", body, viewer))
