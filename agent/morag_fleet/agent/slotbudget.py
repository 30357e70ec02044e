"""How many jobs the agent holds at once: one slot per job, from the poll that may claim it until
the job's result is spooled.

One object owns the count, so every way a slot is taken or freed is here. A poller reserves a
slot before it asks for work, so a claimed job never waits for a slot; the poll then hands the
slot over to the job it claimed, or gives it back. The slot thread releases it when the job is
done. A job that comes without a poll (resumed at start, or found again through the server)
takes a slot even past the budget, so claims wait until the agent is back within it.
"""

from __future__ import annotations

import threading


class SlotBudget:
    """Shared by the pollers (reserve, hand over, give back), the slot threads (release) and
    the start-up recovery (take)."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._polling = 0  # reserved by a poll that has not answered yet
        self._changed = threading.Condition()

    def reserve(self, timeout: float) -> bool:
        """A slot for one poll; False when none came free within `timeout`."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._free > 0, timeout):
                return False
            self._free -= 1
            self._polling += 1
            return True

    def hand_over(self) -> None:
        """The poll claimed a job: the slot is the job's until `release`."""
        with self._changed:
            self._polling -= 1

    def give_back(self) -> None:
        """The poll brought no job, or one the agent will not run again: the slot is free."""
        with self._changed:
            self._polling -= 1
            self._free += 1
            self._changed.notify()

    def take(self) -> None:
        """A job that came without a poll holds a slot too, even past the budget."""
        with self._changed:
            self._free -= 1

    def release(self) -> None:
        """The job is done (its result spooled, or it was given up): its slot is free."""
        with self._changed:
            self._free += 1
            self._changed.notify()

    @property
    def polling(self) -> bool:
        """A poll is in flight on a reserved slot: it may still bring a claim. Counted as the
        slot is reserved, before the poller looks at pause, so a pause is never reported while
        a claim can still arrive."""
        return self._polling > 0

    @property
    def free(self) -> int:
        """Slots neither reserved nor held by a job (below zero while resumed jobs overdraw)."""
        return self._free
