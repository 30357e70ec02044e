"""The telemetry wire schema: one msgpack map per message, `{v, kind, agent, sid, seq, ts, body}`.

`sid` names one publisher session (one agent process run), so `(agent, sid, seq)` identifies a job
event exactly once even when the agent restarts and its sequence numbers start again. Validation
is strict on the envelope and on the fields the controller reads; unknown extra body fields are
kept, so a newer agent can add fields without breaking an older controller.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 * 1024

AGENT_KINDS = ("hello", "heartbeat", "event", "bye", "ping")
CONTROLLER_KINDS = ("ack", "command")
AGENT_STATES = ("idle", "busy", "draining", "paused")
COMMANDS = ("drain", "resume")
JOB_PHASES = ("claimed", "downloading", "converting", "submitted", "spooled", "completed",
              "failed")
MAX_NAME_LEN = 128

_NUMBER = (int, float)


class SchemaError(ValueError):
    """A message does not follow the schema; the text says which field and why."""


def _require(body: dict[str, Any], key: str, kinds: tuple[type, ...] | type,
             optional: bool = False) -> None:
    if key not in body or body[key] is None:
        if optional:
            return
        raise SchemaError(f"missing field {key!r}")
    value = body[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise SchemaError(f"field {key!r} must not be a boolean")
    if not isinstance(value, kinds):
        raise SchemaError(f"field {key!r} has type {type(value).__name__}")


def _check_name(value: Any, what: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LEN or not value.isprintable():
        raise SchemaError(f"{what} must be a printable string of 1..{MAX_NAME_LEN} characters")


def validate_envelope(msg: Any) -> dict[str, Any]:
    """Check the fields every agent message has; return the message for chaining."""
    if not isinstance(msg, dict):
        raise SchemaError("message is not a map")
    if msg.get("v") != PROTOCOL_VERSION:
        raise SchemaError(f"unsupported protocol version {msg.get('v')!r}")
    if msg.get("kind") not in AGENT_KINDS:
        raise SchemaError(f"unknown kind {msg.get('kind')!r}")
    _check_name(msg.get("agent"), "agent")
    _check_name(msg.get("sid"), "sid")
    _require(msg, "seq", int)
    _require(msg, "ts", _NUMBER)
    _require(msg, "body", dict)
    if msg["seq"] < 0:
        raise SchemaError("seq must be >= 0")
    return msg


def _validate_hello(body: dict[str, Any]) -> None:
    _require(body, "version", str)
    _require(body, "host", str)
    _require(body, "slots", int)
    _require(body, "heartbeat_interval", _NUMBER)
    _require(body, "content_types", list, optional=True)
    _require(body, "gpus", list, optional=True)
    _require(body, "converters", dict, optional=True)
    if body["heartbeat_interval"] <= 0:
        raise SchemaError("heartbeat_interval must be > 0")


def _validate_heartbeat(body: dict[str, Any]) -> None:
    if body.get("state") not in AGENT_STATES:
        raise SchemaError(f"unknown agent state {body.get('state')!r}")
    _require(body, "slots_used", int)
    _require(body, "slots_total", int)
    _require(body, "active_jobs", list)
    _require(body, "counters", dict)
    _require(body, "outbox_depth", int, optional=True)
    _require(body, "gpus", list, optional=True)
    for job in body["active_jobs"]:
        if not isinstance(job, dict):
            raise SchemaError("active_jobs entries must be maps")
        _check_name(job.get("job_id"), "active job id")
        _require(job, "progress", _NUMBER, optional=True)
    for name, value in body["counters"].items():
        if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError("counters must map names to integers")


def _validate_event(body: dict[str, Any]) -> None:
    if body.get("scope") not in ("job", "agent"):
        raise SchemaError(f"unknown event scope {body.get('scope')!r}")
    _check_name(body.get("name"), "event name")
    if body["scope"] == "job":
        _check_name(body.get("job_id"), "job_id")
        if body["name"] not in JOB_PHASES:
            raise SchemaError(f"unknown job phase {body['name']!r}")
        _require(body, "progress", _NUMBER, optional=True)
        _require(body, "duration", _NUMBER, optional=True)


_BODY_CHECKS = {
    "hello": _validate_hello,
    "heartbeat": _validate_heartbeat,
    "event": _validate_event,
    "bye": lambda body: None,
    "ping": lambda body: None,
}


def validate(msg: Any) -> dict[str, Any]:
    """Validate an agent message completely; raises SchemaError."""
    validate_envelope(msg)
    _BODY_CHECKS[msg["kind"]](msg["body"])
    return msg


def validate_reply(msg: Any) -> dict[str, Any]:
    """Validate a controller -> agent message (ack or command)."""
    if not isinstance(msg, dict) or msg.get("v") != PROTOCOL_VERSION:
        raise SchemaError("reply is not a versioned map")
    if msg.get("kind") == "ack":
        _require(msg, "seq", int)
    elif msg.get("kind") == "command":
        if msg.get("name") not in COMMANDS:
            raise SchemaError(f"unknown command {msg.get('name')!r}")
        _require(msg, "body", dict)
    else:
        raise SchemaError(f"unknown reply kind {msg.get('kind')!r}")
    return msg
