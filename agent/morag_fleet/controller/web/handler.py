"""HTTP requests: reads are GETs, every action is a POST the guard lets through, and nothing
about a request is logged but its method, path (never its query or body) and status."""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from morag_fleet.controller.web import pages
from morag_fleet.controller.web.app import Dashboard
from morag_fleet.controller.web.guard import SESSION_COOKIE, Session, WriteRefused
from morag_fleet.log import get_logger

log = get_logger(__name__)

MAX_FORM_BYTES = 16 * 1024
LIVE_EVERY_S = 1.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Handler(BaseHTTPRequestHandler):
    server_version = "morag-fleet"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops reading frees its thread
    app: Dashboard  # set on the subclass the server makes
    started = 0.0  # when the request line had been read (perf_counter)

    # ---- plumbing -------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the base logs the request line, query included; `_done` logs what is safe

    def _done(self, status: int) -> None:
        log.debug("http_request", method=self.command, path=self._route()[0], status=status)

    def _route(self) -> tuple[str, dict[str, str]]:
        """The path without the URL prefix (present when a proxy passes it on) and the query."""
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        prefix = self.app.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):] or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return path, query

    def send_bytes(self, status: int, body: bytes, content_type: str,
                   headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # how long the controller took to build the answer, for browsers' tools and benchmarks
        built_ms = 1000 * (time.perf_counter() - self.started)
        self.send_header("Server-Timing", f"app;dur={built_ms:.1f}")
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._done(status)

    def send_html(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, text.encode(), "text/html; charset=utf-8",
                        {"Cache-Control": "no-store", **(headers or {})})

    def send_json(self, status: int, data: Any) -> None:
        self.send_bytes(status, json.dumps(data).encode(), "application/json",
                        {"Cache-Control": "no-store"})

    def current_session(self) -> Session | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(SESSION_COOKIE)
        return self.app.guard.session(morsel.value if morsel else None)

    # ---- methods --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self.started = time.perf_counter()
        path, query = self._route()
        try:
            pages.serve_get(self, path, query)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a page bug is a 500 for that request, never a dead server
            log.exception("http_page_failed", path=path, error=str(exc))
            self.send_html(500, "<p>The page failed; the controller's log says why.</p>")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self.started = time.perf_counter()
        path, _query = self._route()
        try:
            form = self._form()
            if path == "/login":
                pages.sign_in(self, form)
                return
            session = self.current_session()
            self.app.guard.check_write(
                authorization=self.headers.get("Authorization"),
                sid=session.sid if session else None, csrf=form.get("csrf"),
                origin=self.headers.get("Origin"),
                hosts=(self.headers.get("Host"), self.headers.get("X-Forwarded-Host")))
            pages.serve_post(self, path, form, session)
        except WriteRefused as exc:
            log.warning("http_write_refused", path=path, reason=exc.reason)
            pages.refused(self, exc)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # no traceback: a renderer showing locals would show the form
            log.error("http_action_failed", path=path, error=f"{type(exc).__name__}: {exc}")
            self.send_html(500, "<p>The action failed; the controller's log says why.</p>")

    def _form(self) -> dict[str, str]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise WriteRefused(400, "bad Content-Length") from None
        if length < 0 or length > MAX_FORM_BYTES:
            raise WriteRefused(413, "the form is too large")
        raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        return {k: v[-1] for k, v in parse_qs(raw).items()}

    def _not_allowed(self) -> None:
        self.started = time.perf_counter()
        self.send_bytes(405, b"method not allowed\n", "text/plain", {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    # ---- pieces the pages use -------------------------------------------------------------
    def metrics(self) -> None:
        self.send_bytes(200, generate_latest(self.app.registry), CONTENT_TYPE_LATEST)

    def stream(self, build: Any) -> None:
        """Server-Sent Events: `build()` every second until the client or the server goes."""
        if not self.app.streams.acquire(blocking=False):
            self.send_bytes(503, b"too many live connections; poll instead\n", "text/plain",
                       {"Retry-After": "10"})
            return
        try:
            self.send_response(200)
            for name, value in {"Content-Type": "text/event-stream",
                                "Cache-Control": "no-store", "X-Accel-Buffering": "no",
                                "Connection": "close", **SECURITY_HEADERS}.items():
                self.send_header(name, value)
            self.end_headers()
            self.close_connection = True
            self._done(200)
            if self.command == "HEAD":
                return
            self.wfile.write(b"retry: 2000\n\n")
            due = time.monotonic()
            while not self.app.stopping.is_set():
                data = json.dumps({"html": build(), "stamp": time.time()})
                self.wfile.write(f"event: update\ndata: {data}\n\n".encode())
                self.wfile.flush()
                # a steady cadence: a late update shortens the next wait (down to half a
                # second), so a busy controller still sends one a second on average
                due = max(due + LIVE_EVERY_S, time.monotonic() + LIVE_EVERY_S / 2)
                self.app.stopping.wait(due - time.monotonic())
        finally:
            self.app.streams.release()

    def redirect(self, location: str, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": location,
                                                             **(headers or {})})
