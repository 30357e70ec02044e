"""One HTTP server for `/metrics` and the dashboard, in its own threads beside the ingest loop."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from morag_fleet.controller.state import FleetState
from morag_fleet.controller.web.app import Dashboard
from morag_fleet.controller.web.handler import Handler
from morag_fleet.controller.web.options import WebOptions, normalise_prefix
from morag_fleet.log import get_logger

log = get_logger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a live connection never holds up the controller's exit
    request_queue_size = 128


class DashboardServer:
    """`start()` binds (raising OSError when it cannot) and serves; `stop()` ends live streams
    and closes the socket."""

    def __init__(self, state: FleetState, registry: CollectorRegistry, history: Any,
                 state_dir: Path, options: WebOptions, started: float) -> None:
        self.options = options
        self.app = Dashboard(state, registry, history, state_dir, options, started)
        self.httpd: _Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    def start(self) -> DashboardServer:
        handler = type("BoundHandler", (Handler,), {"app": self.app})
        self.httpd = _Server((self.options.addr, self.options.port or 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http",
                                       kwargs={"poll_interval": 0.5}, daemon=True)
        self.thread.start()
        threading.Thread(target=self.app.refresh_forever, name="http-refresh",
                         daemon=True).start()
        log.info("http_started", addr=self.options.addr, port=self.port,
                 url_prefix=self.options.url_prefix or "/",
                 dashboard="read-only" if self.app.guard.read_only else "actions with token")
        return self

    def stop(self) -> None:
        self.app.stopping.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def serve_controller(controller: Any) -> DashboardServer:
    """The server for a started `Controller` (its config's HTTP settings, state, registry and
    job history)."""
    config = controller.config
    options = WebOptions(port=config.metrics_port, addr=config.metrics_addr,
                         url_prefix=normalise_prefix(config.url_prefix),
                         token_file=config.dashboard_token_file)
    return DashboardServer(controller.state, controller.metrics.registry, controller.history,
                           config.state_dir, options, controller.started).start()
