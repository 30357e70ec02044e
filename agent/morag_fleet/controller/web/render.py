"""Small HTML builders. Every value that reaches a page goes through `esc`: agents choose their
host names, versions and event texts, so each one is made printable (`text.clean`) and then
HTML-escaped, and only markup built here is trusted."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from morag_fleet.controller import views
from morag_fleet.controller.text import clean


def esc(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return html.escape(clean(value), quote=True)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the URL prefix for links, and whether (and with which CSRF value) they may
    act. `csrf` is None for a reader; then no form that writes is drawn."""
    prefix: str
    read_only: bool
    csrf: str | None = None

    def url(self, path: str, **query: Any) -> str:
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return html.escape(self.prefix + path + ("?" + urlencode(params) if params else ""))

    def link(self, path: str, text: Any, **query: Any) -> str:
        return f'<a href="{self.url(path, **query)}">{esc(text)}</a>'

    def agent_link(self, name: str) -> str:
        return self.link("/agent/" + quote(name, safe=""), name)

    def job_link(self, job_id: str) -> str:
        return self.link("/job/" + quote(job_id, safe=""), job_id)

    @property
    def can_act(self) -> bool:
        return not self.read_only and self.csrf is not None

    def form(self, path: str, fields: str, button: str, css: str = "") -> str:
        """A POST form with this viewer's CSRF value; nothing at all for a reader."""
        if not self.can_act:
            return ""
        return (f'<form method="post" action="{self.url(path)}" class="action {css}">'
                f'<input type="hidden" name="csrf" value="{esc(self.csrf)}">{fields}'
                f'<button type="submit">{esc(button)}</button></form>')


def hidden(name: str, value: Any) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def table(headers: Sequence[str], rows: Iterable[str], empty: str, css: str = "") -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def row(cells: Iterable[str], **attrs: Any) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f"<tr{extra}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def progress_bar(fraction: Any) -> str:
    """A native <progress> element: no inline style, so the page's CSP can forbid them."""
    if not views.is_number(fraction):
        return '<span class="muted">-</span>'
    share = max(0.0, min(1.0, float(fraction)))
    return (f'<progress value="{share:.3f}" max="1"></progress> '
            f'<span class="pct">{100 * share:.0f}%</span>')


def ago(ts: Any, now: float | None = None) -> str:
    if not views.is_number(ts) or not ts:
        return "never"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return f'<span title="{when}">{esc(views.ago(ts, now))}</span>'


def clock(ts: Any) -> str:
    if not views.is_number(ts):
        return "-"
    return esc(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)))


def seconds(value: Any) -> str:
    if not views.is_number(value):
        return "-"
    return esc(f"{value:.1f}s" if value < 120 else views.duration(value))


def state_badge(state: Any, reason: Any = None) -> str:
    label = f"{state}: {reason}" if reason else state
    return f'<span class="state state-{esc(state)}">{esc(label)}</span>'


def agent_state(row: dict[str, Any]) -> str:
    """The state, why, and the operator's drain note and expiry where there is one."""
    badge = state_badge(row["state"], row.get("state_reason"))
    note, until = row.get("drain_note"), row.get("drain_until")
    if note:
        badge += f' <span class="note">{esc(note)}</span>'
    if views.is_number(until):
        when = time.strftime("%H:%M", time.localtime(until))
        badge += f' <span class="muted">until {esc(when)}</span>'
    return badge


def percent(value: Any) -> str:
    return esc(f"{value:.0f}%") if views.is_number(value) else "-"


TIME_KEYS = ("until", "drain_until", "started_at", "expires", "at")


def details(body: dict[str, Any], skip: Sequence[str] = views.EVENT_DETAIL_SKIP) -> str:
    """An event's other fields as key=value; times (`until`...) as local clock times."""
    parts = []
    for key, value in body.items():
        if key in skip or value in (None, ""):
            continue
        if key in TIME_KEYS and views.is_number(value):
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
        parts.append(f"{key}={value}")
    return esc(" ".join(parts)) if parts else ""
