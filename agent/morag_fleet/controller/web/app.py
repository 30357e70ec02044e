"""What the request handlers share: the live snapshot, history, the guard, the actions, and
the rendering of whole pages in the layout."""

from __future__ import annotations

import html
import threading
import time
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from prometheus_client import CollectorRegistry

from morag_fleet.controller.state import FleetState
from morag_fleet.controller.web import fleet_page
from morag_fleet.controller.web.actions import Actions
from morag_fleet.controller.web.guard import Guard, Session
from morag_fleet.controller.web.options import WebOptions, read_token
from morag_fleet.controller.web.render import Viewer, esc
from morag_fleet.controller.web.snapshot import Snapshot, SnapshotCache

OUTCOMES_MAX_AGE_S = 5.0
MAX_CACHED_VIEWS = 64
REFRESH_S = 1.0
STALE_AFTER_S = 2.5  # a request draws for itself only when the refresher is this far behind
WATCHED_S = 10.0  # a fleet view is kept drawn this long after it was last asked for
MAX_WATCHED = 16  # fleet views the refresher keeps drawn, whatever the requests ask for
MAX_STREAMS = 32  # live connections; more browsers fall back to polling
PAGES = ("fleet", "jobs", "failures")


def _package_text(*parts: str) -> str:
    return resources.files(__package__).joinpath(*parts).read_text(encoding="utf-8")


class Dashboard:
    def __init__(self, state: FleetState, registry: CollectorRegistry, history: Any,
                 state_dir: Path, options: WebOptions, started: float) -> None:
        self.state = state
        self.registry = registry
        self.options = options
        self.started = started
        self.prefix = options.url_prefix
        token = read_token(options.token_file) if options.token_file else None
        self.guard = Guard(token)
        self.snapshots = SnapshotCache(state)
        self.history = history  # controller.history: jobs, timelines, failures, agent changes
        self.actions = Actions(state_dir)
        self.layout = Template(_package_text("templates", "layout.html"))
        self.static = {name: _package_text("static", name)
                       for name in ("dashboard.js", "dashboard.css")}
        self.stopping = threading.Event()
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self._outcomes: tuple[float, dict[str, dict[str, int]]] = (0.0, {})
        self._fragments: dict[tuple[str, str, int], tuple[float, dict[str, str]]] = {}
        self._watched: dict[tuple[str, str, int], float] = {}  # fleet view -> last asked for

    def viewer(self, session: Session | None) -> Viewer:
        return Viewer(self.prefix, self.guard.read_only, session.csrf if session else None)

    def outcomes(self) -> dict[str, dict[str, int]]:
        """The last hour's outcomes by content type, read at most every few seconds."""
        taken, value = self._outcomes
        now = time.time()
        if now - taken >= OUTCOMES_MAX_AGE_S:
            value = self.history.finished_counts(3600)
            self._outcomes = (now, value)
        return value

    def fleet_fragments(self, state: str, query: str, page: int) -> dict[str, str]:
        """The fleet page's parts for these filters, drawn once per snapshot however many pages
        show them (they hold links only, nothing that depends on who is looking). While the
        refresher keeps them current, a request only picks them up."""
        key = (state, query, page)
        self._watched[key] = time.monotonic()
        if len(self._watched) > MAX_WATCHED:  # many different filters: keep the newest
            oldest = min(self._watched.items(), key=lambda item: item[1])[0]
            self._watched.pop(oldest, None)
        snap = self.snapshots.get(STALE_AFTER_S)
        cached = self._fragments.get(key)
        if cached is not None and cached[0] == snap.taken:
            return cached[1]
        return self._draw(snap, key)

    def _draw(self, snap: Snapshot, key: tuple[str, str, int]) -> dict[str, str]:
        fragments = fleet_page.fleet_fragments(snap, self.outcomes(), self.viewer(None), *key)
        if len(self._fragments) >= MAX_CACHED_VIEWS:
            self._fragments.clear()
        self._fragments[key] = (snap.taken, fragments)
        return fragments

    def refresh_forever(self) -> None:
        """Each second, while a fleet view was asked for recently: a new snapshot, and every
        such view drawn from it, so requests and live updates find them ready. With no page
        open nothing runs."""
        while not self.stopping.wait(REFRESH_S):
            now = time.monotonic()
            keys = [k for k, used in list(self._watched.items()) if now - used < WATCHED_S]
            if not keys:
                self._watched.clear()
                continue
            snap = self.snapshots.renew()
            for key in keys:
                self._draw(snap, key)

    def page(self, title: str, body: str, viewer: Viewer, here: str = "",
             live: str = "", banner: str = "") -> str:
        if viewer.read_only:
            banner = ('<div class="banner" id="read-only">Read-only: this controller was started '
                      "without <code>--dashboard-token-file</code>, so the dashboard shows the "
                      "fleet and offers no actions.</div>") + banner
        fields: dict[str, Any] = {f"nav_{name}": ' class="here"' if name == here else ""
                                  for name in PAGES}
        return self.layout.substitute(
            title=esc(title), prefix=html.escape(self.prefix), live=live, banner=banner, body=body,
            who=self._who(viewer), started=esc(time.strftime(
                "%Y-%m-%d %H:%M", time.localtime(self.started))),
            built=esc(time.strftime("%H:%M:%S")), **fields)

    def _who(self, viewer: Viewer) -> str:
        if viewer.read_only:
            return '<span class="muted">read-only</span>'
        if viewer.can_act:
            return viewer.form("/logout", "", "Sign out")
        return f'<a href="{viewer.url("/login")}" id="sign-in">Sign in to act</a>'
