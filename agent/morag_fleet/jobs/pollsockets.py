"""Polls that can be cut off from another thread.

Why: a long poll is a request the server holds open until work arrives. An agent told to stop
must not be handed a job through it afterwards (it would have to run it, or leave it claimed and
unreported), and must not wait out the hold either. `requests` has no way to cancel a request in
flight, so the poll session's connections register their sockets here, and `close()` shuts them
down: the blocked read ends at once, the server sees the hang-up and hands the job to no one.
Connections opened after `close()` are shut before any request goes out on them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class PollSockets:
    """The live sockets of one session, and whether polling has been closed for good."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def opened(self, sock: socket.socket | None) -> None:
        """Called by each new connection once connected; refuses it after `close()`."""
        if sock is None:
            return
        with self._lock:
            if not self.closed.is_set():
                self._sockets.add(sock)
                return
        _shut(sock)
        raise ConnectionAbortedError("polling was closed: the agent is stopping")

    def close(self) -> None:
        """Ends every poll in flight and every poll still to come; safe from any thread."""
        with self._lock:
            self.closed.set()
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def adapter(self, **kwargs: Any) -> HTTPAdapter:
        """An adapter whose connections register here."""
        return _TrackingAdapter(self, **kwargs)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _tracked_pool(pool: type[HTTPConnectionPool], conn: type[HTTPConnection],
                  registry: PollSockets) -> type[HTTPConnectionPool]:
    class TrackedConnection(conn):  # type: ignore[valid-type, misc]
        def connect(self) -> None:
            super().connect()
            registry.opened(self.sock)

    class TrackedPool(pool):  # type: ignore[valid-type, misc]
        ConnectionCls = TrackedConnection

    return TrackedPool


class _TrackingAdapter(HTTPAdapter):
    def __init__(self, registry: PollSockets, **kwargs: Any) -> None:
        self._registry = registry
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _tracked_pool(HTTPConnectionPool, HTTPConnection, self._registry),
            "https": _tracked_pool(HTTPSConnectionPool, HTTPSConnection, self._registry),
        }
