"""A stored agent row back into a record, trusting nothing in it.

The history may hold rows written before intake checked nested fields and finite numbers (a GPU
utilisation of "x", a NaN heartbeat interval), or rows damaged on disk. A view computes sums and
ages from these fields, so one bad row would fail the view for the whole fleet, on every start.
Each stored field is checked by the rules intake applies now; a field that fails them is left at
its default, and a row without a usable name is skipped. The last heartbeat frame is replayed
through the full validator (`FleetState.load`), so a bad one is ignored there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from morag_fleet.controller.state import HOST_FIELDS, STORED_FIELDS, AgentRecord
from morag_fleet.wire import schema

LINKS = ("online", "lost", "offline")
_DEFAULTS = AgentRecord(name="")
_TYPES_WHEN_SET = {"key": str, "pid": int}  # fields whose default is None


def _link(value: Any) -> None:
    if value not in LINKS:
        raise schema.SchemaError(f"unknown link {value!r}")


def _strings(value: list[Any]) -> None:
    if any(type(item) is not str for item in value):
        raise schema.SchemaError("expected strings")


def _gpus(value: list[Any]) -> None:
    for gpu in value:
        schema.check_gpu(gpu)


_CHECKS: dict[str, Callable[[Any], None]] = {
    "heartbeat_interval": schema.check_heartbeat_interval, "link": _link,
    "content_types": _strings, "gpus": _gpus,
}


def field_ok(name: str, value: Any) -> bool:
    """Whether a stored value may go into the record: the default's type (an int for a float),
    finite numbers and bounded nesting throughout, and the field's intake rule."""
    default = getattr(_DEFAULTS, name)
    if value is None:
        return default is None
    expected = _TYPES_WHEN_SET.get(name) or type(default)
    if type(value) is not expected and not (expected is float and type(value) is int):
        return False
    if schema.values_problem(value) is not None:
        return False
    try:
        _CHECKS.get(name, lambda _: None)(value)
    except schema.SchemaError:
        return False
    return True


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _usable_name(data: dict[str, Any]) -> str | None:
    try:
        schema.check_name(data.get("name"), "agent")
    except schema.SchemaError:
        return None
    return data["name"]


def restore_record(data: Any) -> AgentRecord | None:
    """The record a stored row describes, or None when the row names no agent."""
    if type(data) is not dict or (name := _usable_name(data)) is None:
        return None
    record = AgentRecord(name=name)
    for field in STORED_FIELDS:
        if field != "name" and field in data and field_ok(field, data[field]):
            setattr(record, field, data[field])
    if type(data.get("host_stats")) is dict:  # rows from before heartbeats were kept as frames
        record.host_stats = {k: v for k, v in data["host_stats"].items()
                             if k in HOST_FIELDS and _number(v)}
    record.jobs = {job["job_id"]: job for job in _jobs(data.get("jobs"))}
    return record


def _jobs(jobs: Any) -> list[dict[str, Any]]:
    if type(jobs) is not list:
        return []
    usable = []
    for job in jobs:
        try:
            schema.check_job(job)
        except schema.SchemaError:
            continue
        if schema.values_problem(job) is None:
            usable.append(job)
    return usable
