"""Capped exponential backoff with jitter, and Retry-After parsing.

Shared by the API client (retries inside one call), the scheduler (idle polling) and the outbox
(resubmitting results): jitter spreads a fleet's retries so agents that lost the API together do
not all come back in the same instant.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

Jitter = Literal["full", "equal", "none"]

# One generator for every backoff: a fresh Random() seeds itself from os.urandom, which the client
# would pay on every request (it makes a Backoff per call). random() is atomic under the GIL.
_SHARED_RNG = random.Random()


class Backoff:
    """Delays that grow `base * factor**n` up to `cap`, randomised by `jitter`:

    - "full": uniform in [0, d] (spreads best; the default),
    - "equal": uniform in [d/2, d] (never retries almost at once),
    - "none": exactly d.

    A server's Retry-After is a floor: `next(retry_after)` never returns less than it. Not
    thread-safe; give each retry loop its own instance.
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 60.0,
        factor: float = 2.0,
        jitter: Jitter = "full",
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError(f"bad backoff: base={base} cap={cap} factor={factor}")
        if jitter not in ("full", "equal", "none"):
            raise ValueError(f"unknown jitter {jitter!r}")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.attempt = 0
        self._rng = rng or _SHARED_RNG

    def ceiling(self) -> float:
        """The un-jittered delay the next call is drawn under."""
        # min() before the power would overflow after ~1000 attempts
        exponent = min(self.attempt, 64)
        return min(self.cap, self.base * self.factor**exponent)

    def next(self, retry_after: float | None = None) -> float:
        """The next delay in seconds; advances the attempt counter."""
        ceiling = self.ceiling()
        self.attempt += 1
        if self.jitter == "full":
            delay = self._rng.uniform(0.0, ceiling)
        elif self.jitter == "equal":
            delay = self._rng.uniform(ceiling / 2, ceiling)
        else:
            delay = ceiling
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return delay

    next_delay = next

    def reset(self) -> None:
        """Back to the first delay, after a success."""
        self.attempt = 0

    def __repr__(self) -> str:
        return (f"Backoff(base={self.base}, cap={self.cap}, factor={self.factor}, "
                f"jitter={self.jitter!r}, attempt={self.attempt})")


def parse_retry_after(header: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if absent or
    unreadable. A date in the past gives 0."""
    if header is None:
        return None
    text = header.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC, source unknown
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def wait_or_stop(delay: float, stop: threading.Event | None) -> bool:
    """Sleep `delay` seconds; True if `stop` was set meanwhile (the caller should give up)."""
    if stop is None:
        time.sleep(delay)
        return False
    return stop.wait(delay)
