"""The telemetry wire schema: one msgpack map per message, `{v, kind, agent, sid, seq, ts, body}`.

`sid` names one publisher session (one agent process run), so `(agent, sid, seq)` identifies a job
event exactly once even when the agent restarts and its sequence numbers start again. Validation
is strict on the envelope and on the fields the controller reads or shows (nested ones included:
GPU entries, active jobs); unknown extra body fields are kept, so a newer agent can add fields
without breaking an older controller. No number anywhere in a message may be NaN or infinite:
such a value would poison every sum and time the views compute, and JSON cannot carry it. Maps and
lists nest at most MAX_DEPTH deep, so writing a message as JSON (the event history) cannot exhaust
the interpreter's recursion limit.
"""

from __future__ import annotations

import math
from typing import Any

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 * 1024

AGENT_KINDS = ("hello", "heartbeat", "event", "bye", "ping")
CONTROLLER_KINDS = ("ack", "command")
AGENT_STATES = ("idle", "busy", "draining", "paused")
COMMANDS = ("drain", "resume", "cancel")
JOB_PHASES = ("claimed", "downloading", "converting", "submitted", "spooled", "completed",
              "failed", "result_refused", "result_discarded", "slot_recycled")
# seconds a job spent in a phase, sent with the event that ends the phase
PHASE_SECONDS_FIELDS = ("download_s", "convert_s", "deliver_s")
MAX_NAME_LEN = 128
MAX_DEPTH = 32
# an agent is lost after three missed heartbeats: a longer interval would hide a dead agent
MAX_HEARTBEAT_INTERVAL = 3600.0
GPU_NUMBER_FIELDS = ("util", "memory_used_mb", "memory_total_mb", "temperature")
HOST_NUMBER_FIELDS = ("cpu_percent", "memory_percent", "memory_available_mb", "disk_percent",
                      "load1")
_SCALARS = (str, int, float, bool, type(None))

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


def _optional_number(body: dict[str, Any], key: str, what: str) -> None:
    value = body.get(key)
    if value is not None and type(value) not in _NUMBER:
        raise SchemaError(f"{what} {key!r} must be a number")


def values_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """What is wrong with the values inside `value` (walked without recursion): a NaN or
    infinite number, or maps and lists nested deeper than `max_depth`; None when nothing."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return "numbers must be finite (no NaN or infinity)"
        elif kind is dict or kind is list:
            if depth >= max_depth:
                return f"maps and lists may nest at most {max_depth} deep"
            children = item.values() if kind is dict else item
            stack.extend((child, depth + 1) for child in children)
    return None


def check_gpu(gpu: Any) -> None:
    """One GPU entry of a hello or heartbeat: a map of scalars, its figures numbers."""
    if type(gpu) is not dict:
        raise SchemaError("gpus entries must be maps")
    for value in gpu.values():
        if type(value) not in _SCALARS:
            raise SchemaError("gpu fields must be scalars")
    for key in GPU_NUMBER_FIELDS:
        _optional_number(gpu, key, "gpu field")


def check_job(job: Any) -> None:
    """One entry of a heartbeat's active_jobs (the fields the views read)."""
    if type(job) is not dict:
        raise SchemaError("active_jobs entries must be maps")
    check_name(job.get("job_id"), "active job id")
    _optional_number(job, "progress", "active job")
    _optional_number(job, "started_at", "active job")
    for key in ("content_type", "phase"):
        if job.get(key) is not None and type(job[key]) is not str:
            raise SchemaError(f"active job {key!r} must be a string")
    if type(job.get("slot")) not in _SCALARS:
        raise SchemaError("active job 'slot' must be a scalar")


def check_heartbeat_interval(value: Any) -> None:
    if type(value) not in _NUMBER or not 0 < value <= MAX_HEARTBEAT_INTERVAL:
        raise SchemaError(f"heartbeat_interval must be a number in (0, {MAX_HEARTBEAT_INTERVAL:g}]")


def check_name(value: Any, what: str) -> None:
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
    check_name(msg.get("agent"), "agent")
    check_name(msg.get("sid"), "sid")
    seq = msg.get("seq")
    if type(seq) is not int or seq < 0:
        raise SchemaError("seq must be an integer >= 0 (not a boolean)")
    if type(msg.get("ts")) not in _NUMBER:
        raise SchemaError("ts must be a number")
    if type(msg.get("body")) is not dict:
        raise SchemaError("body must be a map")
    problem = values_problem(msg)
    if problem is not None:
        raise SchemaError(problem)
    return msg


def _validate_hello(body: dict[str, Any]) -> None:
    _require(body, "version", str)
    _require(body, "host", str)
    _require(body, "slots", int)
    _require(body, "heartbeat_interval", _NUMBER)
    _require(body, "content_types", list, optional=True)
    _require(body, "gpus", list, optional=True)
    _require(body, "converters", dict, optional=True)
    check_heartbeat_interval(body["heartbeat_interval"])
    for content_type in body.get("content_types") or ():
        if type(content_type) is not str:
            raise SchemaError("content_types must be strings")
    for gpu in body.get("gpus") or ():
        check_gpu(gpu)


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
        check_job(job)
    for gpu in gpus or ():
        check_gpu(gpu)
    for key in HOST_NUMBER_FIELDS:
        _optional_number(body, key, "host figure")
    _optional_number(body, "drain_until", "drain")
    if body.get("drain_note") is not None and type(body["drain_note"]) is not str:
        raise SchemaError("drain_note must be a string")
    for value in counters.values():
        if type(value) is not int:
            raise SchemaError("counters must map names to integers")
    check_selftest_verdict(body.get("selftest"))


def check_selftest_verdict(selftest: Any) -> None:
    """A heartbeat's optional `selftest`: {content type: {ok: bool, reason: str}} (an agent
    older than the field sends none)."""
    if selftest is None:
        return
    if type(selftest) is not dict:
        raise SchemaError("selftest must be a map")
    for name, verdict in selftest.items():
        if type(name) is not str or type(verdict) is not dict:
            raise SchemaError("selftest must map content types to maps")
        if type(verdict.get("ok")) is not bool:
            raise SchemaError("selftest verdicts need a boolean 'ok'")
        if verdict.get("reason") is not None and type(verdict["reason"]) is not str:
            raise SchemaError("a selftest verdict's 'reason' must be a string")


def _validate_event(body: dict[str, Any]) -> None:
    if body.get("scope") not in ("job", "agent"):
        raise SchemaError(f"unknown event scope {body.get('scope')!r}")
    check_name(body.get("name"), "event name")
    if body["scope"] == "job":
        check_name(body.get("job_id"), "job_id")
        if body["name"] not in JOB_PHASES:
            raise SchemaError(f"unknown job phase {body['name']!r}")
        _require(body, "progress", _NUMBER, optional=True)
        _require(body, "duration", _NUMBER, optional=True)
        for key in PHASE_SECONDS_FIELDS:
            _require(body, key, _NUMBER, optional=True)


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
