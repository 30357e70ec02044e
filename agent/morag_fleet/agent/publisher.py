"""The agent side of the telemetry plane: one daemon thread owns a DEALER socket to the controller.

Telemetry never blocks work. The agent's threads only append encoded job events to a bounded
buffer under a short lock and poke a pipe; the publisher thread sends them in sequence order with
DONTWAIT, drops heartbeats while the controller is away, and resends unacknowledged events after a
reconnect. The controller deduplicates by (agent, session, seq), so each event is recorded once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from morag_fleet.agent.hoststats import HostStats
from morag_fleet.log import get_logger
from morag_fleet.settings import AgentSettings
from morag_fleet.wire import codec, schema
from morag_fleet.wire.link import (
    HANDSHAKE_EVENTS,
    CurveKeys,
    curve_keys,
    dealer_socket,
    describe_handshake_failure,
)

log = get_logger(__name__)

DEFAULT_MAX_PENDING = 10_000
SEND_BATCH = 256


class Publisher:
    """Heartbeats, job and agent events to the controller; drain/resume commands back."""

    def __init__(self, settings: AgentSettings, snapshot: Callable[[], dict[str, Any]],
                 on_command: Callable[[str, dict[str, Any]], None], hello: dict[str, Any],
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._settings = settings
        self._keys: CurveKeys | None = curve_keys(settings)  # bad key settings fail here, early
        self._snapshot = snapshot
        self._on_command = on_command
        self._hello = {**hello, "heartbeat_interval": settings.heartbeat_interval,
                       "pid": os.getpid()}
        self._agent = settings.worker_id
        self._sid = secrets.token_hex(8)
        self._interval = settings.heartbeat_interval
        self._resend_after = max(3.0, 3 * self._interval)
        self._max_pending = max_pending
        # shared with caller threads, guarded by _lock
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, bytes]] = deque()
        self._seq = 0
        self._dropped_events = 0
        # owned by the publisher thread (read racily by link_status, which is fine)
        self._cursor = 1
        self._connected = False
        self._last_ack: float | None = None
        self._last_progress = time.monotonic()
        self._dropped_heartbeats = 0
        self._link_error: str | None = None
        self._retry_at: float | None = None  # after a refused handshake ZeroMQ stops retrying
        self._retry_backoff = 1.0
        self._stop = threading.Event()
        self._close_deadline = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None

    # ---- API for the agent's threads -------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
        self._thread.start()

    def job_event(self, job_id: str, phase: str, **fields: Any) -> None:
        self._enqueue({**fields, "scope": "job", "name": phase, "job_id": job_id})

    def agent_event(self, name: str, **fields: Any) -> None:
        self._enqueue({**fields, "scope": "agent", "name": name})

    def link_status(self) -> dict[str, Any]:
        last_ack = self._last_ack
        with self._lock:
            pending, dropped = len(self._pending), self._dropped_events
        return {
            "connected": self._connected,
            "last_ack_age": None if last_ack is None else time.monotonic() - last_ack,
            "pending_events": pending,
            "dropped_events": dropped,
            "dropped_heartbeats": self._dropped_heartbeats,
            "error": self._link_error,
        }

    def close(self, timeout: float = 1.0) -> None:
        """Flush what the controller will take within `timeout`, say bye, and stop the thread."""
        self._close_deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout + 2.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _enqueue(self, body: dict[str, Any]) -> None:
        """Never raises and never waits for the network: the agent's work comes first."""
        try:
            with self._lock:
                self._seq += 1
                frame = codec.encode(self._envelope("event", body, self._seq))
                self._pending.append((self._seq, frame))
                if len(self._pending) > self._max_pending:
                    self._pending.popleft()
                    self._dropped_events += 1
        except Exception as exc:  # an unencodable field must not break a conversion
            log.warning("telemetry_event_dropped", error=str(exc), event=body.get("name"))
            return
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full pipe: the thread is already due to wake
            os.write(self._wake_w, b"\0")

    def _envelope(self, kind: str, body: dict[str, Any], seq: int = 0) -> dict[str, Any]:
        return {"v": schema.PROTOCOL_VERSION, "kind": kind, "agent": self._agent,
                "sid": self._sid, "seq": seq, "ts": time.time(), "body": body}

    # ---- the publisher thread ----------------------------------------------------------------
    def _run(self) -> None:
        ctx = zmq.Context()
        stats = HostStats(self._settings.state_dir)
        sock = dealer_socket(ctx, self._keys, self._interval)
        monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)
        try:
            sock.connect(self._settings.controller)
            self._loop(sock, monitor, stats)
            self._finish(sock, monitor)
        except Exception:
            log.exception("telemetry_thread_failed")
        finally:
            stats.close()
            self._connected = False
            ctx.destroy(linger=self._linger_ms())

    def _loop(self, sock: zmq.Socket, monitor: zmq.Socket, stats: HostStats) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_beat = time.monotonic()
        while not self._stop.is_set():
            wait = max(0.0, next_beat - time.monotonic())
            if self._has_unacked():
                wait = min(wait, 0.25)
            if self._retry_at is not None:
                wait = min(wait, max(0.0, self._retry_at - time.monotonic()))
            ready = dict(poller.poll(wait * 1000))
            if self._wake_r in ready:
                self._drain_wake_pipe()
            if monitor in ready:
                self._on_monitor(sock, monitor)
            if sock in ready:
                self._receive(sock)
            now = time.monotonic()
            if self._retry_at is not None and now >= self._retry_at:
                self._reconnect(sock)
            if now >= next_beat:
                self._send_heartbeat(sock, stats)
                next_beat = now + self._interval
            self._maybe_rewind(now)
            self._flush_events(sock)

    def _reconnect(self, sock: zmq.Socket) -> None:
        """Try a refused handshake again: the operator may have authorized our key since."""
        self._retry_at = None
        with contextlib.suppress(zmq.ZMQError):
            sock.disconnect(self._settings.controller)
        sock.connect(self._settings.controller)

    def _drain_wake_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _on_monitor(self, sock: zmq.Socket, monitor: zmq.Socket) -> None:
        while monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._connected = True
                self._link_error = None
                self._retry_backoff = 1.0
                self._send(sock, self._envelope("hello", self._hello))
                self._cursor = self._first_pending_seq()  # resend whatever was not acked
                self._last_progress = time.monotonic()
            elif event == zmq.EVENT_DISCONNECTED:
                self._connected = False
            else:
                self._connected = False
                self._link_error = describe_handshake_failure(event)
                self._retry_at = time.monotonic() + self._retry_backoff
                self._retry_backoff = min(30.0, self._retry_backoff * 2)
                log.warning("telemetry_handshake_failed", reason=self._link_error,
                            retry_in=self._retry_backoff)

    def _receive(self, sock: zmq.Socket) -> None:
        while True:
            try:
                frame = sock.recv(zmq.DONTWAIT)
            except zmq.Again:
                return
            try:
                reply = schema.validate_reply(codec.decode(frame))
            except (codec.DecodeError, schema.SchemaError) as exc:
                log.warning("telemetry_bad_reply", error=str(exc))
                continue
            if reply["kind"] == "ack":
                self._on_ack(sock, reply)
            else:
                self._run_command(reply["name"], reply["body"])

    def _on_ack(self, sock: zmq.Socket, reply: dict[str, Any]) -> None:
        self._last_ack = time.monotonic()
        if reply.get("hello"):  # the controller does not know us (e.g. its state was wiped)
            self._send(sock, self._envelope("hello", self._hello))
        if reply.get("sid") not in (None, self._sid):
            return
        with self._lock:
            before = len(self._pending)
            while self._pending and self._pending[0][0] <= reply["seq"]:
                self._pending.popleft()
            progressed = len(self._pending) != before
        if progressed:
            self._last_progress = self._last_ack

    def _run_command(self, name: str, body: dict[str, Any]) -> None:
        log.info("telemetry_command", command=name)
        try:
            self._on_command(name, body)
        except Exception:
            log.exception("telemetry_command_failed", command=name)

    def _send_heartbeat(self, sock: zmq.Socket, stats: HostStats) -> None:
        if not self._connected:
            self._dropped_heartbeats += 1  # nobody to tell; a stale beat is worth nothing later
            return
        try:
            body = dict(self._snapshot())
        except Exception:
            log.exception("telemetry_snapshot_failed")
            return
        host = stats.sample()
        body.setdefault("gpus", host.pop("gpus"))
        body.update(host)
        if not self._send(sock, self._envelope("heartbeat", body)):
            self._dropped_heartbeats += 1

    def _send(self, sock: zmq.Socket, message: dict[str, Any]) -> bool:
        try:
            sock.send(codec.encode(message), zmq.DONTWAIT)
            return True
        except zmq.Again:
            return False
        except (TypeError, ValueError) as exc:
            log.warning("telemetry_unencodable", kind=message.get("kind"), error=str(exc))
            return False

    def _first_pending_seq(self) -> int:
        with self._lock:
            return self._pending[0][0] if self._pending else self._seq + 1

    def _has_unacked(self) -> bool:
        return bool(self._pending)

    def _maybe_rewind(self, now: float) -> None:
        """Unacked events with no ack progress for a while were probably lost with a connection
        ZeroMQ dropped silently: send them again (the controller ignores ones it has)."""
        first = self._first_pending_seq()
        if self._cursor > first and now - self._last_progress > self._resend_after:
            self._cursor = first
            self._last_progress = now

    def _flush_events(self, sock: zmq.Socket) -> None:
        if not self._connected:
            return
        with self._lock:
            if not self._pending:
                return
            self._cursor = max(self._cursor, self._pending[0][0])
            start = self._cursor - self._pending[0][0]
            batch = list(itertools.islice(self._pending, start, start + SEND_BATCH))
        for seq, frame in batch:
            try:
                sock.send(frame, zmq.DONTWAIT)
            except zmq.Again:
                return
            self._cursor = seq + 1

    def _finish(self, sock: zmq.Socket, monitor: zmq.Socket) -> None:
        """On close: give the controller until the deadline to ack pending events, then bye."""
        while self._connected and self._has_unacked() and time.monotonic() < self._close_deadline:
            self._flush_events(sock)
            if sock.poll(50):
                self._receive(sock)
            if monitor.poll(0):
                self._on_monitor(sock, monitor)
        if self._connected:
            self._send(sock, self._envelope("bye", {}))

    def _linger_ms(self) -> int:
        if not self._stop.is_set():
            return 0
        return max(0, int((self._close_deadline - time.monotonic()) * 1000))


def probe_controller(settings: AgentSettings, timeout: float = 5.0) -> tuple[bool, str]:
    """One ping/ack round trip for `morag-agent check`; never touches the agent's fleet state."""
    from morag_fleet.wire.link import LinkConfigError

    if not settings.controller:
        return False, "no controller configured"
    try:
        keys = curve_keys(settings)
    except LinkConfigError as exc:
        return False, str(exc)
    ctx = zmq.Context()
    try:
        sock = dealer_socket(ctx, keys, settings.heartbeat_interval, linger_ms=0)
        monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)
        sock.connect(settings.controller)
        return _ping(sock, monitor, settings, timeout)
    finally:
        ctx.destroy(linger=0)


def _ping(sock: zmq.Socket, monitor: zmq.Socket, settings: AgentSettings,
          timeout: float) -> tuple[bool, str]:
    started = time.monotonic()
    deadline = started + timeout
    ping = codec.encode({"v": schema.PROTOCOL_VERSION, "kind": "ping",
                         "agent": settings.worker_id, "sid": "probe", "seq": 0,
                         "ts": time.time(), "body": {}})
    sent = False
    while time.monotonic() < deadline:
        while monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event not in (zmq.EVENT_HANDSHAKE_SUCCEEDED, zmq.EVENT_DISCONNECTED):
                return False, describe_handshake_failure(event)
        if not sent:
            try:
                sock.send(ping, zmq.DONTWAIT)
                sent = True
            except zmq.Again:
                pass
        if sock.poll(50):
            with contextlib.suppress(codec.DecodeError, schema.SchemaError):
                if schema.validate_reply(codec.decode(sock.recv()))["kind"] == "ack":
                    ms = (time.monotonic() - started) * 1000
                    return True, f"controller {settings.controller} answered in {ms:.0f} ms"
    return False, f"no answer from controller {settings.controller} within {timeout:g} s"
