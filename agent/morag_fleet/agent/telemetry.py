"""Choosing the telemetry publisher: the ZeroMQ one when a controller is configured, else a
publisher that drops everything (an agent without a controller works the same)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from morag_fleet.settings import AgentSettings


class NullPublisher:
    def start(self) -> None:
        pass

    def job_event(self, job_id: str, phase: str, **fields: Any) -> None:
        pass

    def agent_event(self, name: str, **fields: Any) -> None:
        pass

    def link_status(self) -> dict[str, Any]:
        return {"connected": False, "configured": False}

    def close(self, timeout: float = 1.0) -> None:
        pass


def make_publisher(settings: AgentSettings, snapshot: Callable[[], dict[str, Any]],
                   on_command: Callable[[str, dict[str, Any]], None],
                   hello: dict[str, Any]) -> Any:
    if not settings.controller:
        return NullPublisher()
    from morag_fleet.agent.publisher import Publisher

    return Publisher(settings, snapshot, on_command, hello)
