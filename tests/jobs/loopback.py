"""Loopback HTTP(S) servers the client tests script byte by byte.

Each test hands a `handle(req)` function to `LoopbackServer`; it runs in the server thread for
every request and writes whatever status, headers and (possibly broken) body the test needs. The
server records what it saw (method, path, query, headers, arrival time) so tests can assert on
the requests the client really sent.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.retry import RetryPolicy, Waits
from morag_fleet.settings import AgentSettings

TOKEN = "tok-7Hq2-very-secret-value-Zx9"
FAST_RETRY = RetryPolicy(call_attempts=4, call_waits=Waits(0.01, 0.05), max_retry_after=60.0,
                         download_resumes=3)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Req:
    """The handler's view of one request, with helpers to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, seen: Seen, index: int) -> None:
        self.handler = handler
        self.seen = seen
        self.index = index  # 0 for the first request this server got
        self.bytes_sent = 0

    @property
    def path(self) -> str:
        return self.seen.path

    def header(self, name: str) -> str | None:
        return self.handler.headers.get(name)

    def start(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.handler.send_response(status)
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        self.handler.end_headers()

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(data)
        self.handler.wfile.flush()
        self.bytes_sent += len(data)

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.start(status, {"Content-Length": str(len(body)), **(headers or {})})
        if body:
            self.write(body)

    def json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(data).encode(),
                  {"Content-Type": "application/json", **(headers or {})})

    def close_after(self) -> None:
        """Drop the connection once the handler returns (truncation, close-delimited bodies)."""
        self.handler.close_connection = True


Handle = Callable[[Req], None]


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs when many slots connect at once


class LoopbackServer:
    """A real threaded HTTP server on 127.0.0.1 with a random port."""

    def __init__(self, handle: Handle, tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.seen: list[Seen] = []
        self.results: list[Req] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _dispatch(self) -> None:
                outer._serve(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _dispatch

        self.httpd = _Httpd(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        seen = Seen(handler.command, parts.path, parse_qs(parts.query),
                    dict(handler.headers.items()), body)
        with self._lock:
            self.seen.append(seen)
            req = Req(handler, seen, len(self.seen) - 1)
            self.results.append(req)
        try:
            self.handle(req)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def make_settings(url: str, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "api_base_url": url, "api_key": TOKEN, "worker_id": "worker-test-1",
        "connect_timeout": 5.0, "read_timeout": 10.0, "submit_timeout": 10.0,
        "state_dir": Path("/nonexistent-state"),
    }
    values.update(overrides)
    return AgentSettings(**values)


def make_client(url: str, retry: RetryPolicy = FAST_RETRY, stop: threading.Event | None = None,
                **overrides: Any) -> MoragClient:
    return MoragClient(make_settings(url, **overrides), stop=stop, retry=retry)


@dataclass
class SelfSigned:
    cert_pem: Path
    key_pem: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_pem, self.key_pem)
        return context
