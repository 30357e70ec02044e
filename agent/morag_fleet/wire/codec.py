"""msgpack encoding with limits: a hostile frame cannot make the decoder allocate much, and
extension types (which have no meaning in this protocol) are refused rather than passed on."""

from __future__ import annotations

from typing import Any

import msgpack

from morag_fleet.wire.schema import MAX_FRAME_BYTES


class DecodeError(ValueError):
    """The bytes are not a msgpack message this protocol accepts."""


def _refuse_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


def encode(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def decode(frame: bytes, max_bytes: int = MAX_FRAME_BYTES, max_items: int = 10_000) -> Any:
    """Decode one frame; every failure is a DecodeError with a short reason. `max_items` bounds
    arrays and maps (raised only for trusted local replies such as a 10,000-agent status)."""
    if len(frame) > max_bytes:
        raise DecodeError(f"frame of {len(frame)} bytes exceeds {max_bytes}")
    try:
        return msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=max_items,
            max_map_len=max_items,
        )
    except DecodeError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, RecursionError) as exc:
        raise DecodeError(f"not a msgpack message: {type(exc).__name__}") from None
