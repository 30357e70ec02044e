"""The controller daemon: a ROUTER socket for agents, the control socket for operators, and the
housekeeping (lost detection, persistence, retention, key reloads) in one single-threaded loop.

Every agent frame is validated before it touches the state; a bad one is counted under
`rejected:<reason>` and dropped. With CURVE, the key a frame speaks with is read from that frame
(see `identity` for why it is never remembered by routing id). Events are committed to SQLite
before they are acknowledged, in batches, so ingest stays fast and an ack always means "on disk".
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from morag_fleet.controller import actions, views
from morag_fleet.controller.auth import AuthorizedKeys
from morag_fleet.controller.control import ControlError, bind_control, serve_one
from morag_fleet.controller.fastbeat import decode_heartbeat
from morag_fleet.controller.history import History, history_handlers
from morag_fleet.controller.identity import IdentityRefused
from morag_fleet.controller.metrics import Metrics
from morag_fleet.controller.state import AgentRecord, FleetState
from morag_fleet.controller.store import PendingEvent, Retention, Store
from morag_fleet.log import get_logger
from morag_fleet.wire import codec, schema
from morag_fleet.wire.keys import KeyFileError, create_key_pair, load_secret

log = get_logger(__name__)

BATCH = 2000
# After a turn that emptied the queue with fewer frames than this, wait a moment before the
# next poll so frames gather: a trickle of single frames costs a wake-up (and ZeroMQ signalling
# between its threads) per frame, a batch costs one. Adds at most COALESCE_S of latency.
COALESCE_BELOW = 200
COALESCE_S = 0.002
HARD_FRAME_LIMIT = 4 * schema.MAX_FRAME_BYTES  # beyond this ZeroMQ drops the peer unread
ZERO_COPY_RECV = 10  # libzmq's ZMQ_ZERO_COPY_RECV context option (pyzmq names no constant)
SAVE_EVERY = 15.0
SAVE_CHUNK = 1000  # agent snapshots written per loop turn, so a big fleet never stalls ingest
LOST_CHECK_EVERY = 0.5
RETENTION_EVERY = 60.0
KEYS_CHECK_EVERY = 2.0
ACK_HEARTBEATS_EVERY = 1.0
# plain ints: pyzmq's flag enums cost about a microsecond per combination on the hot path
_DONTWAIT = int(zmq.DONTWAIT)
_SNDMORE_DONTWAIT = int(zmq.SNDMORE | zmq.DONTWAIT)
_PING_ACK = codec.encode({"v": schema.PROTOCOL_VERSION, "kind": "ack", "seq": 0})


class ControllerError(RuntimeError):
    """The controller cannot start; the message says what to fix."""


@dataclass
class ControllerConfig:
    bind: str
    state_dir: Path
    plaintext: bool = False
    authorized_keys: Path | None = None
    secret_key: Path | None = None
    metrics_port: int | None = None  # the HTTP server: /metrics and the dashboard
    metrics_addr: str = "127.0.0.1"
    url_prefix: str = ""
    dashboard_token_file: Path | None = None
    retention: Retention = field(default_factory=Retention)
    names_per_key: int = 1  # agent names one CURVE key may use; 0: no limit

    @property
    def keys_dir(self) -> Path:
        return self.authorized_keys or self.state_dir / "authorized_keys"

    @property
    def secret_key_path(self) -> Path:
        return self.secret_key or self.state_dir / "controller.key_secret"


def copying_context() -> zmq.Context:
    """A context whose connections copy each received frame into its own allocation.

    By default libzmq keeps a small received frame inside the connection's 8 KB read buffer, and
    the whole buffer lives as long as any frame in it is queued. With thousands of agents each
    read holds one or two heartbeats, so a backlog under overload kept a whole read buffer per
    queued frame, several times the memory the frames themselves need (the overload run of
    tests/bench/bench_controller.py shows it). Copying a heartbeat-sized frame costs nothing
    measurable. Sockets take the setting when they are created, so it is set before any socket
    exists."""
    ctx = zmq.Context()
    try:
        ctx.set(ZERO_COPY_RECV, 0)
    except zmq.ZMQError:  # a libzmq without the option: only the memory saving is lost
        log.warning("zmq_zero_copy_recv_unsupported", libzmq=zmq.zmq_version())
    return ctx


class Controller:
    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self.ctx = copying_context()
        self.auth: AuthorizedKeys | None = None
        self.state = FleetState(self._is_authorized, config.names_per_key)
        self.store: Store | None = None
        self.history: History | None = None  # read-only queries, safe from any thread
        self.metrics = Metrics(self.state)
        self.web: Any = None  # the HTTP server for /metrics and the dashboard
        self.started = time.time()
        self._stop = False
        self._reload = False
        self._lock_file: Any = None
        self._to_save: list[str] = []
        self._timers = dict.fromkeys(("save", "lost", "retention", "keys"), 0.0)
        self.on_tick: Callable[[], None] | None = None

    # ---- start and stop -----------------------------------------------------------------------
    def start(self) -> None:
        self._prepare_state_dir()
        self.store = Store(self.config.state_dir / "controller.sqlite", self.config.retention)
        self.history = History(self.store.path)
        self.state.load(self.store.load_agents())
        self.router = self._bind_router()
        self.control = bind_control(self.ctx, self.config.state_dir)
        if self.config.metrics_port is not None:
            from morag_fleet.controller.web.server import serve_controller

            self.web = serve_controller(self)
        log.info("controller_started", bind=self.config.bind, curve=not self.config.plaintext,
                 agents_known=len(self.state.agents), metrics_port=self.config.metrics_port)

    def _prepare_state_dir(self) -> None:
        state_dir = self.config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = open(state_dir / "controller.lock", "w")  # noqa: SIM115 - held
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ControllerError(f"another controller is running with state dir {state_dir}")\
                from None

    def _bind_router(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
        # per connection: a burst of resent events (the agent sends 256 at a time) fits, and a
        # stalled controller cannot queue 10,000 frames for each of 10,000 agents
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.SNDHWM, 1000)
        # Dead peers are found by the kernel, not by ZMTP heartbeats: libzmq cancels a timer by
        # scanning all of them, so ROUTER-side heartbeats cost O(connections) per ping, which
        # at 10,000 agents took more CPU than the heartbeat messages themselves. The agents
        # still ping (one connection each, nothing to scan); we only answer.
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 30)
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 10)
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
        sock.setsockopt(zmq.TCP_MAXRT, 60_000)  # unacknowledged data (an ack) for 60 s: gone
        sock.setsockopt(zmq.BACKLOG, 1024)
        if not self.config.plaintext:
            self._setup_curve(sock)
        try:
            sock.bind(self.config.bind)
        except zmq.ZMQError as exc:
            raise ControllerError(f"cannot bind {self.config.bind}: {exc}") from None
        return sock

    def _setup_curve(self, sock: zmq.Socket) -> None:
        keys_dir = self.config.keys_dir
        keys_dir.mkdir(parents=True, exist_ok=True)
        secret_path = self.config.secret_key_path
        if not secret_path.exists():
            if self.config.secret_key is not None:
                raise ControllerError(f"secret key file {secret_path} does not exist "
                                      f"(create it with `morag-fleet keys`)")
            create_key_pair(secret_path.parent, secret_path.name.removesuffix(".key_secret"))
            log.info("controller_key_created", public_key=str(secret_path.with_suffix(".key")),
                     hint="copy the .key file to every agent as controller_public_key")
        try:
            public, secret = load_secret(secret_path)
        except KeyFileError as exc:
            raise ControllerError(str(exc)) from None
        self.auth = AuthorizedKeys(self.ctx, keys_dir)
        self.auth.start()
        sock.curve_server = True
        sock.curve_publickey = public
        sock.curve_secretkey = secret

    def request_stop(self) -> None:
        self._stop = True

    def request_reload(self) -> None:
        self._reload = True

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
        if self.store is not None:
            self.flush()
            self.store.close()
        if self.auth is not None:
            self.auth.stop()
        if self.web is not None:
            self.web.stop()
        self.metrics.close()
        self.ctx.destroy(linger=200)
        if self._lock_file is not None:
            self._lock_file.close()
        log.info("controller_stopped")

    # ---- the loop -------------------------------------------------------------------------------
    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        while not self._stop:
            ready = dict(poller.poll(100))
            if self.router in ready and 0 < self.ingest() < COALESCE_BELOW:
                time.sleep(COALESCE_S)
            if self.control in ready:
                serve_one(self.control, self.control_handlers())
            self.housekeeping(time.time())

    def ingest(self, max_messages: int = BATCH) -> int:
        """Read up to `max_messages` waiting frames; commit their events, then ack.

        One ROUTER message is [routing id, payload]; its parts arrive together, so the payload
        is read without waiting, and `Frame.more` is much cheaper than asking for RCVMORE."""
        events: list[PendingEvent] = []
        acks: dict[bytes, AgentRecord | None] = {}
        now = time.time()  # one clock read per batch: a batch takes milliseconds
        recv = self.router.recv
        curve = not self.config.plaintext
        handled = 0
        while handled < max_messages:
            try:
                routing_id = recv(_DONTWAIT)
                frame = recv(_DONTWAIT, copy=False)
            except zmq.Again:
                break
            handled += 1
            if frame.more:
                while self.router.getsockopt(zmq.RCVMORE):
                    self.router.recv()
                self.state.count("rejected:frames")
                continue
            user_id = _proven_key(frame) if curve else None
            if curve and user_id is None:  # no key proven for this frame: it speaks for no one
                self.state.count("rejected:identity")
                continue
            self.handle(routing_id, user_id, frame.bytes, events, acks, now)
        if events:
            self._commit(events)
        self._send_acks(acks)
        return handled

    def _commit(self, events: list[PendingEvent]) -> None:
        """Events and the sequence numbers they advance, in one transaction, before any ack."""
        sessions = {}
        for pending in events:
            record = self.state.agents.get(pending.agent)
            if record is not None and pending.body.get("by") != "controller":
                sessions[record.name] = (record.sid, record.last_seq)
        assert self.store is not None
        self.store.record_events(events, sessions)

    def handle(self, routing_id: bytes, user_id: str | None, payload: bytes,
               events: list[PendingEvent], acks: dict[bytes, AgentRecord | None],
               now: float | None = None) -> None:
        """Validate one agent frame and apply it. Never raises for anything a peer can send.

        Heartbeats laid out as agents send them take the precompiled check in `fastbeat`;
        everything else, and anything that check is not sure about, the full validator."""
        if len(payload) > schema.MAX_FRAME_BYTES:
            self.state.count("rejected:oversize")
            return
        now = time.time() if now is None else now
        beat = decode_heartbeat(payload)
        if beat is not None:
            record = self._admit(beat.agent, "frame:heartbeat", user_id, routing_id, now,
                                 events)
            if record is not None:
                self.state.on_fast_heartbeat(record, beat.body)
                record.beat = payload
                self._ack_heartbeat(record, routing_id, now, acks)
            return
        try:
            msg = schema.validate(codec.decode(payload))
        except codec.DecodeError:
            self.state.count("rejected:decode")
            return
        except schema.SchemaError:
            self.state.count("rejected:schema")
            return
        kind = msg["kind"]
        if kind == "ping":
            self.state.count("frame:ping")
            acks[routing_id] = None
            return
        record = self._admit(msg["agent"], "frame:" + kind, user_id, routing_id, now, events)
        if record is None:
            return
        self._apply(record, msg, events)
        if kind == "heartbeat":
            record.beat = payload
            self._ack_heartbeat(record, routing_id, now, acks)
        else:
            record.next_ack = now + ACK_HEARTBEATS_EVERY
            acks[routing_id] = record

    def _admit(self, name: str, counter: str, user_id: str | None, routing_id: bytes,
               now: float, events: list[PendingEvent]) -> AgentRecord | None:
        """The sender's record, or None when its key may not use that name (counted)."""
        try:
            record, bound, returned = self.state.admit(name, user_id, routing_id, now)
        except IdentityRefused as exc:
            self.state.count("rejected:identity")
            log.warning("identity_refused", agent=name, key=user_id, reason=str(exc))
            return None
        self.state.count(counter)
        if bound and self.store is not None:
            self.store.save_agents([record])
        if returned:
            events.append(self._controller_event(record.name, "reconnected", now))
        return record

    @staticmethod
    def _ack_heartbeat(record: AgentRecord, routing_id: bytes, now: float,
                       acks: dict[bytes, AgentRecord | None]) -> None:
        """Every event, hello and bye is acked; heartbeats at most once a second per agent,
        which is all the agent's link check needs and saves most acks of a busy fleet."""
        if now >= record.next_ack or not record.has_hello:
            record.next_ack = now + ACK_HEARTBEATS_EVERY
            acks[routing_id] = record

    def _apply(self, record: AgentRecord, msg: dict[str, Any],
               events: list[PendingEvent]) -> None:
        kind = msg["kind"]
        if kind == "heartbeat":
            self.state.on_heartbeat(record, msg)
        elif kind == "event":
            new, outcome = self.state.on_event(record, msg)
            if new:
                events.append(PendingEvent(record.name, msg["ts"], msg["body"]))
                self.metrics.job_event(record, msg["body"])
            else:
                self.state.count("duplicate:event")
            if outcome is not None:
                self.metrics.job_finished(outcome)
        elif kind == "hello":
            self.state.on_hello(record, msg)
            events.append(self._controller_event(record.name, "hello", msg["ts"], {
                "host": record.host, "version": record.version, "slots": record.slots_total}))
        elif kind == "bye":
            self.state.on_bye(record)
            events.append(self._controller_event(record.name, "bye", msg["ts"]))

    @staticmethod
    def _controller_event(agent: str, name: str, ts: float,
                          extra: dict[str, Any] | None = None) -> PendingEvent:
        return PendingEvent(agent, ts, {"scope": "agent", "name": name, "by": "controller",
                                        **(extra or {})})

    def _send_acks(self, acks: dict[bytes, AgentRecord | None]) -> None:
        send = self.router.send
        for routing_id, record in acks.items():
            frame = _PING_ACK if record is None else self._ack_frame(record)
            try:
                send(routing_id, _SNDMORE_DONTWAIT)  # ROUTER refuses here or takes both parts
                send(frame, _DONTWAIT)
            except zmq.ZMQError:  # peer gone or its queue full: it resends, we re-ack later
                self.state.count("ack:undeliverable")

    @staticmethod
    def _ack_frame(record: AgentRecord) -> bytes:
        """The encoded ack for this agent, re-encoded only when what it says has changed."""
        key = (record.last_seq, record.sid, record.has_hello)
        if record.ack_key != key:
            ack: dict[str, Any] = {"v": schema.PROTOCOL_VERSION, "kind": "ack",
                                   "seq": record.last_seq, "sid": record.sid}
            if not record.has_hello:
                ack["hello"] = True
            record.ack_key, record.ack_frame = key, codec.encode(ack)
        return record.ack_frame

    # ---- housekeeping -------------------------------------------------------------------------
    def housekeeping(self, now: float) -> None:
        if self._due("lost", now, LOST_CHECK_EVERY):
            lost = self.state.find_lost(now)
            if lost and self.store is not None:
                self.store.record_events(
                    [self._controller_event(r.name, "lost", now) for r in lost], {})
                for record in lost:
                    log.warning("agent_lost", agent=record.name, last_seen=record.last_seen)
        if self._due("save", now, SAVE_EVERY):
            self._to_save.extend(self.state.dirty)
            self.state.dirty = set()
        if self._to_save and self.store is not None:
            chunk, self._to_save = self._to_save[:SAVE_CHUNK], self._to_save[SAVE_CHUNK:]
            self.store.save_agents(self.state.agents[n] for n in chunk if n in self.state.agents)
        if self._due("retention", now, RETENTION_EVERY) and self.store is not None:
            self.store.apply_retention(now)
            self._forget_old_agents(now)
        if self.auth is not None and (self._reload or self._due("keys", now, KEYS_CHECK_EVERY)):
            if self._reload:
                self.auth.reload()
            else:
                self.auth.reload_if_changed()
            self._reload = False
        if self.on_tick is not None:
            self.on_tick()

    def _due(self, timer: str, now: float, every: float) -> bool:
        if now - self._timers[timer] < every:
            return False
        self._timers[timer] = now
        return True

    def flush(self) -> None:
        """Write every changed agent now (at shutdown)."""
        if self.store is not None:
            names = set(self._to_save) | self.state.dirty
            self._to_save, self.state.dirty = [], set()
            self.store.save_agents(self.state.agents[n] for n in names if n in self.state.agents)

    def _forget_old_agents(self, now: float) -> None:
        cutoff = now - self.config.retention.max_age_s
        for name in [n for n, r in self.state.agents.items() if r.last_seen < cutoff]:
            self.state.remove(name)

    def _is_authorized(self, key: str) -> bool:
        return self.auth is None or self.auth.is_authorized(key)

    # ---- control requests ---------------------------------------------------------------------
    def control_handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "status": lambda args: views.status_data(self.state, self.info()),
            "agents": lambda args: views.agents_data(
                self.state, self.auth.names if self.auth else {}),
            "jobs": lambda args: views.jobs_data(self.state),
            "events": self._events,
            "drain": lambda args: actions.drain(self, args.get("agent"), args.get("note"),
                                                args.get("until")),
            "resume": lambda args: actions.resume(self, args.get("agent")),
            "cancel": lambda args: actions.cancel(self, args.get("job"), args.get("note"),
                                                  args.get("grace")),
            "forget": lambda args: self.forget(args.get("agent")),
            "stats": lambda args: {**self.info(), "counts": dict(self.state.counts)},
            **history_handlers(self),
        }

    def info(self) -> dict[str, Any]:
        return {"bind": self.config.bind, "curve": not self.config.plaintext,
                "started": self.started, "pid": os.getpid(),
                "agents": len(self.state.agents)}

    def _events(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.store is not None
        return self.store.events(after_id=int(args.get("after") or 0), agent=args.get("agent"),
                                 limit=min(int(args.get("limit") or 50), 10_000),
                                 job_id=args.get("job"))

    def command(self, agent: Any, name: str, body: dict[str, Any] | None = None,
                recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command to a connected agent on its current connection and record that it
        was sent (with `recorded`, or the body, in the event). Loop thread only."""
        record = self.state.agents.get(agent) if isinstance(agent, str) else None
        if record is None:
            raise ControlError(f"unknown agent {agent!r}")
        if record.link != "online":
            raise ControlError(f"agent {agent} is {record.status}; {name} was not sent")
        if record.routing_id is None:  # another agent spoke on its routing id since
            raise ControlError(f"agent {agent} has no current connection; {name} was not sent")
        message = {"v": schema.PROTOCOL_VERSION, "kind": "command", "name": name,
                   "body": body or {}, "ts": time.time()}
        try:
            self.router.send_multipart([record.routing_id, codec.encode(message)], zmq.DONTWAIT)
        except zmq.ZMQError as exc:
            raise ControlError(f"agent {agent} could not be reached: {exc}") from None
        assert self.store is not None
        detail = {k: v for k, v in (body if recorded is None else recorded).items()
                  if v is not None}
        self.store.record_events([self._controller_event(agent, "command", time.time(),
                                                         {"command": name, **detail})], {})
        return {"agent": agent, "command": name, "sent": True}

    def forget(self, agent: Any) -> dict[str, Any]:
        """Remove an agent's record from the state and the store: a host that left the fleet, a
        record that should not be trusted, or a name whose key should be free for another name.
        Its event history stays. A connected agent comes back with its next message."""
        record = self.state.agents.get(agent) if isinstance(agent, str) else None
        if record is None:
            raise ControlError(f"unknown agent {agent!r}")
        was = record.status
        self.state.remove(agent)
        assert self.store is not None
        self.store.forget_agent(agent)
        self.store.record_events([self._controller_event(agent, "forgotten", time.time(),
                                                         {"was": was})], {})
        log.info("agent_forgotten", agent=agent, was=was)
        return {"agent": agent, "forgotten": True, "was": was}


def _proven_key(frame: zmq.Frame) -> str | None:
    """The CURVE key ZAP proved for the connection this frame came on (its User-Id)."""
    try:
        return frame.get("User-Id")
    except zmq.ZMQError:
        return None
