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


# Exact type checks (`type(x) is int`) on the hot path: they are several times faster than
# isinstance with tuples and also keep booleans out of integer fields.


def _require(body: dict[str, Any], key: str, kinds: tuple[type, ...] | type,
             optional: bool = False) -> None:
    value = body.get(key)
    if value is None:
        if optional:
            return
        raise SchemaError(f"missing field {key!r}")
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if type(value) not in allowed:
        raise SchemaError(f"field {key!r} has type {type(value).__name__}")


def _check_name(value: Any, what: str) -> None:
    if type(value) is not str or not 0 < len(value) <= MAX_NAME_LEN or not value.isprintable():
        raise SchemaError(f"{what} must be a printable string of 1..{MAX_NAME_LEN} characters")


def validate_envelope(msg: Any) -> dict[str, Any]:
    """Check the fields every agent message has; return the message for chaining."""
    if type(msg) is not dict:
        raise SchemaError("message is not a map")
    if msg.get("v") != PROTOCOL_VERSION:
        raise SchemaError(f"unsupported protocol version {msg.get('v')!r}")
    if msg.get("kind") not in _BODY_CHECKS:
        raise SchemaError(f"unknown kind {msg.get('kind')!r}")
    _check_name(msg.get("agent"), "agent")
    _check_name(msg.get("sid"), "sid")
    seq = msg.get("seq")
    if type(seq) is not int or seq < 0:
        raise SchemaError("seq must be an integer >= 0 (not a boolean)")
    if type(msg.get("ts")) not in _NUMBER:
        raise SchemaError("ts must be a number")
    if type(msg.get("body")) is not dict:
        raise SchemaError("body must be a map")
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
    if type(body.get("slots_used")) is not int or type(body.get("slots_total")) is not int:
        raise SchemaError("slots_used and slots_total must be integers")
    jobs, counters = body.get("active_jobs"), body.get("counters")
    if type(jobs) is not list or type(counters) is not dict:
        raise SchemaError("active_jobs must be a list and counters a map")
    outbox, gpus = body.get("outbox_depth"), body.get("gpus")
    if (outbox is not None and type(outbox) is not int) or (
            gpus is not None and type(gpus) is not list):
        raise SchemaError("outbox_depth must be an integer and gpus a list")
    for job in jobs:
        if type(job) is not dict:
            raise SchemaError("active_jobs entries must be maps")
        _check_name(job.get("job_id"), "active job id")
        progress = job.get("progress")
        if progress is not None and type(progress) not in _NUMBER:
            raise SchemaError("active job progress must be a number")
    for value in counters.values():
        if type(value) is not int:
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
