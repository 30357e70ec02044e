"""The agent's DEALER socket to the controller, configured for a link that may vanish: IMMEDIATE
(no queueing to a peer that is not there), a modest send high-water mark, bounded LINGER,
reconnect backoff, ZMTP heartbeats, and CURVE unless plaintext was asked for explicitly."""

from __future__ import annotations

from dataclasses import dataclass

import zmq

from morag_fleet.settings import AgentSettings
from morag_fleet.wire.keys import KeyFileError, load_public, load_secret
from morag_fleet.wire.schema import MAX_FRAME_BYTES

HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)


class LinkConfigError(ValueError):
    """The telemetry settings cannot make a link (missing keys, plaintext not allowed...)."""


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes
    server: bytes


def curve_keys(settings: AgentSettings) -> CurveKeys | None:
    """The agent's key pair and the controller's public key, or None for plaintext."""
    if settings.telemetry_plaintext:
        return None
    if not settings.agent_key_file or not settings.controller_public_key:
        raise LinkConfigError(
            "telemetry uses CURVE: set agent_key_file (this agent's .key_secret) and "
            "controller_public_key (the controller's .key), or telemetry_plaintext: true")
    try:
        public, secret = load_secret(settings.agent_key_file)
        server = load_public(settings.controller_public_key)
    except KeyFileError as exc:
        raise LinkConfigError(str(exc)) from None
    return CurveKeys(public, secret, server)


def dealer_socket(ctx: zmq.Context, keys: CurveKeys | None, heartbeat_interval: float,
                  linger_ms: int = 1000) -> zmq.Socket:
    """A configured, not yet connected DEALER."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.setsockopt(zmq.RCVHWM, 1000)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    sock.setsockopt(zmq.RECONNECT_IVL, 200)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 10_000)
    beat_ms = max(500, int(heartbeat_interval * 1000))
    sock.setsockopt(zmq.HEARTBEAT_IVL, beat_ms)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * beat_ms)
    if keys is not None:
        sock.curve_publickey = keys.public
        sock.curve_secretkey = keys.secret
        sock.curve_serverkey = keys.server
    return sock


def describe_handshake_failure(event: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "the controller refused this agent's key (not in its authorized keys)"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return "handshake protocol error (plaintext on one side, CURVE on the other?)"
    return "handshake failed (wrong controller public key, or plaintext/CURVE mismatch)"
