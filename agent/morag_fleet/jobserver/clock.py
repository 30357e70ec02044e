"""Time as MoRAG writes it: naive UTC ISO strings. Kept in one place so every timestamp the
server returns has the same shape a MoRAG client already parses."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_epoch() -> float:
    return time.time()


def iso_from_epoch(epoch: float | None) -> str | None:
    """Naive UTC ISO (`2026-11-29T05:50:30.189680`), or None for a missing time."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat()
