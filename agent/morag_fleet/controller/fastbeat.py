"""A precompiled check for the one message that arrives by the ten thousand: the heartbeat.

msgspec decodes and type-checks a heartbeat in one pass in C (several times faster than msgpack
plus the Python checks in `wire.schema`). It is only a shortcut, never the judge: it accepts a
frame only when it is a heartbeat laid out exactly as agents send it, and anything else (other
kinds, unknown fields, any doubt) returns None and goes through `codec.decode` +
`schema.validate`, which decide and name the reason for a refusal. So it may be stricter than the
full validator, never looser:

- every field is typed with no `Any` (no field is skipped unread, so no extension type, no
  timestamp, no bad UTF-8 can slip through), and unknown fields are refused;
- frames longer than `FAST_MAX_BYTES` are not looked at: below that size no array or map can
  hold more items than `codec.decode` allows;
- every float must be finite (a bound NaN fails, as in `wire.schema`), and the figures of the
  views (progress, start times, host load) must be numbers;
- the rules msgspec cannot say (printable names, the number fields of a GPU entry) are checked
  in `decode_heartbeat` with the full validator's own functions.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import msgspec

from morag_fleet.wire.schema import GPU_NUMBER_FIELDS, MAX_NAME_LEN, PROTOCOL_VERSION

FAST_MAX_BYTES = 10_000  # < codec.decode's max_items: no container can be too large below this

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LEN)]
# the bounds refuse NaN and both infinities
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
Number = int | Finite  # both, so a value keeps the type the agent sent (as the full path does)
Scalar = str | int | Finite | bool | None


class FastJob(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    job_id: Name
    progress: Number | None = None
    content_type: str | None = None
    phase: str | None = None
    slot: Scalar = None
    started_at: Number | None = None


class FastVerdict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    ok: bool
    reason: str = ""


class FastBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    state: Literal["idle", "busy", "draining", "paused"]
    slots_used: int
    slots_total: int
    active_jobs: list[FastJob]
    counters: dict[str, int]
    state_reason: str | None = None  # why the agent is paused: "disk full", "drained"
    drain_note: str | None = None  # the operator's words when draining it
    drain_until: Number | None = None  # when the agent resumes by itself (epoch seconds)
    outbox_depth: int | None = None
    gpus: list[dict[str, Scalar]] | None = None
    cpu_percent: Number | None = None
    memory_percent: Number | None = None
    memory_available_mb: Number | None = None
    disk_percent: Number | None = None
    load1: Number | None = None
    selftest: dict[str, FastVerdict] | None = None  # {content type: {ok, reason}}


class FastHeartbeat(msgspec.Struct, forbid_unknown_fields=True, gc=False, tag_field="kind",
                    tag="heartbeat"):
    v: Literal[1]  # type: ignore[valid-type]
    agent: Name
    sid: Name
    seq: Annotated[int, msgspec.Meta(ge=0)]
    ts: Number
    body: FastBody


assert PROTOCOL_VERSION == 1, "FastHeartbeat.v must follow the protocol version"


def _refuse_ext(code: int, data: memoryview) -> object:
    raise ValueError("extension types are not part of the protocol")


_DECODER = msgspec.msgpack.Decoder(FastHeartbeat, ext_hook=_refuse_ext)


def decode_heartbeat(payload: bytes) -> FastHeartbeat | None:
    """The heartbeat in `payload`, or None when the full validator must look at it."""
    if len(payload) > FAST_MAX_BYTES:
        return None
    try:
        beat = _DECODER.decode(payload)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    if not (beat.agent.isprintable() and beat.sid.isprintable()):
        return None
    for job in beat.body.active_jobs:
        if not job.job_id.isprintable():
            return None
    for gpu in beat.body.gpus or ():
        for key in GPU_NUMBER_FIELDS:
            value = gpu.get(key)
            if value is not None and type(value) not in (int, float):
                return None
    return beat
