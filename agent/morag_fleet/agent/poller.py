"""Claims work for the slots: one lead poller always, helpers only while jobs keep coming.

Idle, the API sees one client per agent: the lead alone polls, holding the request where the
server long-polls (`wait`) and otherwise backing off with jitter up to `poll_interval`. Once a
poll brings a job, every free slot polls at once (a helper per slot), so a busy agent claims as
fast as its slots free up instead of one poll round trip at a time; the first empty answer parks
the helpers again. Helpers never ask the server to hold a poll, so after a burst the agent is back
to one waiting request. Errors back off the same way, and also park the helpers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from morag_fleet.agent.diskguard import PauseFlag
from morag_fleet.agent.slotbudget import SlotBudget
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.errors import ApiError, ApiProtocolError
from morag_fleet.jobs.models import Job
from morag_fleet.jobs.retry import Backoff
from morag_fleet.log import get_logger
from morag_fleet.settings import AgentSettings

log = get_logger(__name__)
# An empty answer that took at least this share of the requested wait was a held long poll.
HELD_SHARE = 0.5
PARK_CHECK = 0.5  # how often parked threads look at stop and pause


class Poller:
    """`on_claim(job)` answers whether the agent took the job (False for one it already has);
    `on_bad_claim(job_id, reason)` gets a claim whose answer could not be used."""

    def __init__(self, settings: AgentSettings, client: MoragClient, content_types: Sequence[str],
                 slots: SlotBudget, on_claim: Callable[[Job], bool],
                 on_bad_claim: Callable[[str, str], None],
                 stopping: threading.Event, paused: PauseFlag, helpers: int = 0) -> None:
        self._settings = settings
        self._client = client
        self._content_types = list(content_types)
        self._slots = slots
        self._on_claim = on_claim
        self._on_bad_claim = on_bad_claim
        self._stopping = stopping
        self._paused = paused
        self._helpers = helpers
        self._work_flowing = threading.Event()  # the last answer brought a job
        self._threads: list[threading.Thread] = []
        self.polls = 0

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self, spawn: Callable[..., threading.Thread]) -> None:
        """`spawn(target, name, *args)` starts a thread (the agent's, so it supervises them)."""
        if not self._content_types:
            log.error("nothing_to_poll", reason="no content type can be converted on this host")
            return
        self._threads.append(spawn(self._run, "poller", True))
        for index in range(self._helpers):
            self._threads.append(spawn(self._run, f"poller-helper-{index + 1}", False))

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, lead: bool) -> None:
        idle = Backoff(base=0.25, cap=self._settings.poll_interval, jitter="equal")
        errors = self._client.retry.poll_error_waits.backoff()
        while not self._stopping.is_set():
            if self._paused.is_set():
                self._stopping.wait(PARK_CHECK)
                continue
            if not lead and not self._work_flowing.wait(PARK_CHECK):
                continue
            if not self._slots.reserve(timeout=PARK_CHECK):
                continue
            if self._stopping.is_set() or self._paused.is_set():
                self._slots.give_back()
                continue
            delay = self._poll_once(idle, errors, lead)
            if delay:
                self._stopping.wait(delay)

    def _poll_once(self, idle: Backoff, errors: Backoff, lead: bool) -> float:
        """Holds one reserved slot; hands it to the claimed job or gives it back. Returns how
        long to wait before the next poll."""
        wait = self._settings.long_poll_wait if lead else 0.0  # a helper never holds a poll
        started = time.monotonic()
        try:
            self.polls += 1
            job = self._client.poll(self._content_types, wait=wait)
        except ApiError as exc:
            self._work_flowing.clear()
            self._slots.give_back()
            if isinstance(exc, ApiProtocolError) and exc.claimed_job_id:
                self._on_bad_claim(exc.claimed_job_id, f"the server's job answer is malformed: "
                                                       f"{exc}")
            if self._stopping.is_set():
                return 0.0  # the stop path cut the poll off: not a failure
            delay = errors.next()
            log.warning("poll_failed", error=str(exc), retry_in=round(delay, 2))
            return delay
        errors.reset()
        if job is not None:
            idle.reset()
            self._work_flowing.set()
            self._hand_over(job)
            return 0.0
        self._work_flowing.clear()
        self._slots.give_back()
        held = wait > 0 and time.monotonic() - started >= wait * HELD_SHARE
        if held or not lead:
            idle.reset()
            return 0.0
        return idle.next()

    def _hand_over(self, job: Job) -> None:
        """The reserved slot becomes the job's, unless the agent did not take the job."""
        taken = False
        try:
            taken = self._on_claim(job)
        finally:
            if taken:
                self._slots.hand_over()
            else:
                self._slots.give_back()
