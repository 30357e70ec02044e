"""How the agent retries the jobs API: one `RetryPolicy` with every layer's limit, the capped
exponential `Backoff` with jitter each layer draws its waits from, and Retry-After parsing.

Jitter spreads a fleet's retries, so agents that lost the API together do not all come back in
the same instant.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from morag_fleet.settings import AgentSettings

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


@dataclass(frozen=True)
class Waits:
    """Full-jitter waits between tries, from `first` doubling up to `longest` seconds."""

    first: float
    longest: float

    def backoff(self) -> Backoff:
        return Backoff(base=self.first, cap=self.longest)


@dataclass(frozen=True)
class RetryPolicy:
    """Every place the agent waits for the jobs API, innermost first, with its limit.

    1. One API call (`MoragClient.send`): `call_attempts` tries, `call_waits` between them. A
       Retry-After up to `max_retry_after` is waited out; a longer one ends the call at once.
       The result PUT is tried once (MoRAG ingests inside it, so the layer above asks the job's
       status before sending it again). `longest_call` is what one call can take in all before
       it raises `ApiUnavailable`.
    2. One download (`SourceDownload`): a connection that drops mid-body is resumed with Range,
       `download_resumes` times, after `resume_pause` seconds.
    3. A job's download while the API is away (`JobRunner._download`): no limit on the tries;
       `job_waits` between calls of layer 1.
    4. A spooled result (`Deliverer`, the outbox thread): no limit on the tries, across
       restarts; `result_waits` between them, and at least `rejected_result_wait` after the
       server rejected the result as malformed.
    5. Polling after an error (`Poller`): no limit; `poll_error_waits` between polls. No job is
       held while polling.

    So the total time a job may wait for the API has no limit, on purpose: a claimed job is
    this agent's and must be reported, so neither its download nor its result gives up while
    the API is away. The wait ends when the API answers again (within `noticed_within` seconds
    for a download, within the longest of `result_waits` for a result), when the server takes
    the job back, or when a hard stop aborts the job (its failure is then spooled and reported
    at the next start).
    """

    call_attempts: int = 5
    call_waits: Waits = Waits(0.5, 10.0)
    max_retry_after: float = 60.0
    download_resumes: int = 3
    job_waits: Waits = Waits(1.0, 60.0)
    result_waits: Waits = Waits(1.0, 300.0)
    rejected_result_wait: float = 60.0
    poll_error_waits: Waits = Waits(1.0, 30.0)

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> RetryPolicy:
        """The agent's policy: `outbox_retry_max` caps every wait for a result (and no single
        call waits longer), `poll_interval` sets how patient a waiting job and the poller are."""
        most = settings.outbox_retry_max
        call, job, result, poll = (cls.call_waits, cls.job_waits, cls.result_waits,
                                   cls.poll_error_waits)
        return cls(
            call_waits=Waits(call.first, max(call.first, min(call.longest, most))),
            max_retry_after=min(cls.max_retry_after, most),
            job_waits=Waits(job.first, max(job.first, min(settings.poll_interval * 3,
                                                          job.longest))),
            result_waits=Waits(result.first, max(result.first, most)),
            poll_error_waits=Waits(poll.first, max(settings.poll_interval, poll.longest)))

    def resume_pause(self, resume: int) -> float:
        """Layer 2: the wait before the `resume`-th resume of a dropped download."""
        return self.call_waits.backoff().next() * resume

    def result_delay(self, tries: int) -> float:
        """Layer 4: the wait after a result's `tries`-th failed submission (0 for the first),
        drawn once under that attempt's ceiling."""
        backoff = self.result_waits.backoff()
        backoff.attempt = tries
        return backoff.next()

    def longest_call(self, connect_timeout: float, read_timeout: float) -> float:
        """The most seconds one call of layer 1 takes before it raises `ApiUnavailable`: every
        attempt runs into its timeouts and every wait is the longest allowed."""
        backoff = self.call_waits.backoff()
        waits = 0.0
        for _ in range(self.call_attempts - 1):
            waits += max(backoff.ceiling(), self.max_retry_after)
            backoff.attempt += 1
        return self.call_attempts * (connect_timeout + read_timeout) + waits

    def noticed_within(self) -> float:
        """The longest a job waiting for its download sleeps before it asks again, so once the
        API answers again the job goes on within this many seconds (plus one request)."""
        return max(self.job_waits.longest, self.call_waits.longest, self.max_retry_after)
