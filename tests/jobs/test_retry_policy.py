"""The retry policy: each layer's limit as the agent's settings derive it, one call's stated
longest wait checked against a real server that keeps failing, and a result's delay drawn once.

That a job's own wait for the API has no limit (layer 3) is shown with a real agent in
tests/agent/test_faults.py (`test_download_outage_is_retried`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from morag_fleet.jobs.errors import ApiUnavailable
from morag_fleet.jobs.retry import RetryPolicy, Waits
from morag_fleet.settings import AgentSettings

from .loopback import Req, make_client


def settings(**values: float) -> AgentSettings:
    return AgentSettings(worker_id="policy-test", api_base_url="http://127.0.0.1:9",
                         state_dir=Path("/nonexistent-state"), **values)


def test_settings_set_each_layers_limit() -> None:
    policy = RetryPolicy.from_settings(settings(outbox_retry_max=20.0, poll_interval=5.0))
    assert policy.call_attempts == 5 and policy.call_waits == Waits(0.5, 10.0)
    assert policy.max_retry_after == 20.0
    assert policy.download_resumes == 3
    assert policy.job_waits == Waits(1.0, 15.0)  # up to three poll intervals
    assert policy.result_waits == Waits(1.0, 20.0)
    assert policy.poll_error_waits == Waits(1.0, 30.0)
    # a short outbox_retry_max also shortens the waits inside one call
    short = RetryPolicy.from_settings(settings(outbox_retry_max=4.0, poll_interval=0.1))
    assert (short.call_waits.longest, short.max_retry_after) == (4.0, 4.0)
    assert short.job_waits == Waits(1.0, 1.0)  # never below the first wait
    assert short.noticed_within() == 4.0


def test_the_defaults_state_one_calls_longest_wait() -> None:
    """Five attempts of 10 s connect + 60 s read, and four waits of at most a 60 s Retry-After."""
    defaults = AgentSettings(worker_id="policy-test", api_base_url="http://127.0.0.1:9")
    policy = RetryPolicy.from_settings(defaults)
    longest = policy.longest_call(defaults.connect_timeout, defaults.read_timeout)
    assert longest == 5 * (10.0 + 60.0) + 4 * 60.0
    assert policy.noticed_within() == 60.0


def test_a_call_to_a_failing_server_ends_within_its_longest_wait(serve) -> None:
    """Every answer a 503 with Retry-After: the call waits each one out, and still raises
    `ApiUnavailable` within what the policy states."""
    server = serve(lambda req: req.send(503, b"busy", {"Retry-After": "1"}))
    policy = RetryPolicy(call_attempts=3, call_waits=Waits(0.01, 0.05), max_retry_after=1.0)
    with make_client(server.url, retry=policy, connect_timeout=1.0, read_timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ApiUnavailable):
            client.job_status("job-1")
        took = time.monotonic() - started
    assert len(server.seen) == 3
    assert 2.0 <= took <= policy.longest_call(1.0, 1.0)


def test_a_call_to_a_stalled_server_ends_within_its_longest_wait(serve) -> None:
    """Every attempt runs into the read timeout."""
    def stall(req: Req) -> None:
        time.sleep(1.5)
        req.send(200, b"{}")

    server = serve(stall)
    policy = RetryPolicy(call_attempts=2, call_waits=Waits(0.01, 0.05), max_retry_after=1.0)
    with make_client(server.url, retry=policy, connect_timeout=1.0, read_timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(ApiUnavailable):
            client.job_status("job-1")
        took = time.monotonic() - started
    assert len(server.seen) == 2
    assert took <= policy.longest_call(1.0, 0.3)


def test_a_results_delay_is_one_draw_under_its_attempts_ceiling() -> None:
    policy = RetryPolicy(result_waits=Waits(1.0, 300.0))
    for tries in range(12):
        ceiling = min(300.0, 2.0**tries)
        draws = [policy.result_delay(tries) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling / 2  # the draw is under this attempt's ceiling, not a lower one
    started = time.monotonic()
    assert policy.result_delay(10**7) <= 300.0  # one draw, however many tries came before
    assert time.monotonic() - started < 1.0
