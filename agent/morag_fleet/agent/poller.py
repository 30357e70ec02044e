"""Claims work: one poller for all slots, so the API sees one client per agent.

A free slot polls at once; a server that holds the request (long polling, `wait`) is polled
again straight away, and an answer that came back empty at once means the server does not long
poll, so the poller backs off with jitter up to `poll_interval`. Errors back off the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.errors import ApiError, ApiProtocolError
from morag_fleet.jobs.models import Job
from morag_fleet.jobs.retry import Backoff
from morag_fleet.log import get_logger
from morag_fleet.settings import AgentSettings

log = get_logger(__name__)
# An empty answer that took at least this share of the requested wait was a held long poll.
HELD_SHARE = 0.5


class Poller:
    def __init__(self, settings: AgentSettings, client: MoragClient, content_types: Sequence[str],
                 free_slots: threading.Semaphore, on_claim: Callable[[Job], None],
                 on_bad_claim: Callable[[str, str], None],
                 stopping: threading.Event, paused: threading.Event) -> None:
        self._settings = settings
        self._client = client
        self._content_types = list(content_types)
        self._free_slots = free_slots
        self._on_claim = on_claim
        self._on_bad_claim = on_bad_claim
        self._stopping = stopping
        self._paused = paused
        self._idle = Backoff(base=0.25, cap=settings.poll_interval, jitter="equal")
        self._errors = Backoff(base=1.0, cap=max(settings.poll_interval, 30.0))
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.in_poll = False  # a (long) poll is in flight: it may still bring a claim

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        self._thread = threading.current_thread()
        if not self._content_types:
            log.error("nothing_to_poll", reason="no content type can be converted on this host")
            return
        while not self._stopping.is_set():
            if self._paused.is_set():
                self._stopping.wait(0.5)
                continue
            if not self._free_slots.acquire(timeout=0.5):
                continue
            self.in_poll = True  # set before the pause check, so `paused` is never reported early
            if self._stopping.is_set() or self._paused.is_set():
                self.in_poll = False
                self._free_slots.release()
                continue
            self._poll_once()

    def _poll_once(self) -> None:
        """Holds one reserved slot; hands it to the claimed job or gives it back."""
        wait = self._settings.long_poll_wait
        started = time.monotonic()
        try:
            self.polls += 1
            job = self._client.poll(self._content_types, wait=wait)
        except ApiError as exc:
            self.in_poll = False
            self._free_slots.release()
            if isinstance(exc, ApiProtocolError) and exc.claimed_job_id:
                self._on_bad_claim(exc.claimed_job_id, f"the server's job answer is malformed: "
                                                       f"{exc}")
            delay = self._errors.next()
            log.warning("poll_failed", error=str(exc), retry_in=round(delay, 2))
            self._stopping.wait(delay)
            return
        self.in_poll = False
        self._errors.reset()
        if job is not None:
            self._idle.reset()
            self._on_claim(job)
            return
        self._free_slots.release()
        held = wait > 0 and time.monotonic() - started >= wait * HELD_SHARE
        if held:
            self._idle.reset()
        else:
            self._stopping.wait(self._idle.next())

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
