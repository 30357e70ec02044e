"""Backoff growth, jitter bounds, Retry-After as a floor, and Retry-After parsing."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from morag_fleet.jobs.retry import Backoff, parse_retry_after, wait_or_stop


def test_full_jitter_stays_under_a_doubling_ceiling_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=8.0, rng=random.Random(7))
    ceilings = []
    for _ in range(10):
        ceiling = backoff.ceiling()
        delay = backoff.next()
        assert 0.0 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]


def test_jitter_actually_varies_and_equal_jitter_keeps_half() -> None:
    full = Backoff(base=1.0, cap=1.0, rng=random.Random(1))
    assert len({round(full.next(), 6) for _ in range(20)}) > 10
    equal = Backoff(base=1.0, cap=1.0, jitter="equal", rng=random.Random(1))
    assert all(0.5 <= equal.next() <= 1.0 for _ in range(50))
    assert Backoff(base=2.0, cap=3.0, jitter="none").next() == 2.0


def test_retry_after_is_a_floor_and_reset_starts_over() -> None:
    backoff = Backoff(base=0.1, cap=0.2, rng=random.Random(3))
    assert backoff.next(retry_after=5.0) == 5.0
    assert backoff.next_delay(retry_after=None) <= 0.2
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.attempt == 0 and backoff.ceiling() == 0.1


def test_many_attempts_do_not_overflow() -> None:
    backoff = Backoff(base=0.5, cap=60.0, jitter="none")
    for _ in range(5000):
        delay = backoff.next()
    assert delay == 60.0


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": 2, "cap": 1}, {"factor": 0.5},
                                    {"jitter": "bogus"}])
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_parse_retry_after_seconds_dates_and_garbage() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    future = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=120),
                             usegmt=True)
    assert 110 <= parse_retry_after(future, now=now) <= 121
    past = format_datetime(datetime.fromtimestamp(now, UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5e9x", "Mon, 99 Foo 2020"):
        assert parse_retry_after(bad) is None


def test_wait_or_stop_returns_early_when_stopped() -> None:
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert wait_or_stop(60.0, stop) is True
    assert wait_or_stop(0.0, None) is False
