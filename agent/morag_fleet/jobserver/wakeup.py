"""Wakes long-polling requests when work may have appeared (a job created or put back in the
queue) or the server is stopping. A generation number closes the gap between "I found no job"
and "I started waiting": a change in between is seen at once instead of after the full wait."""

from __future__ import annotations

import asyncio


class JobSignal:
    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self.generation = 0
        self.stopping = False
        self.waiting = 0  # long polls held right now (a gauge for tests and benchmarks)

    async def notify(self) -> None:
        async with self._condition:
            self.generation += 1
            self._condition.notify_all()

    async def stop(self) -> None:
        """Release every waiter so that shutdown does not wait out their long polls."""
        self.stopping = True
        await self.notify()

    async def wait_past(self, generation: int, timeout: float) -> bool:
        """Wait until something happened after `generation`; False when the time ran out."""
        if timeout <= 0:
            return self.generation != generation
        self.waiting += 1
        try:
            return await self._wait(generation, timeout)
        finally:
            self.waiting -= 1

    async def _wait(self, generation: int, timeout: float) -> bool:
        async with self._condition:
            try:
                await asyncio.wait_for(
                    self._condition.wait_for(lambda: self.generation != generation), timeout
                )
            except TimeoutError:
                return False
        return True
