"""Operator actions from the dashboard, sent over the controller's control socket.

The ingest loop owns the agents' socket, so the web thread never touches it: it asks the loop,
exactly as `morag-fleet drain` does, and the loop serves the request between two batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from morag_fleet.controller.control import ControlClient, ControlError, ControllerUnavailable

MAX_NOTE_CHARS = 500


class ActionFailed(Exception):
    """The controller refused or could not do the action; the message is for the operator."""


class Actions:
    def __init__(self, state_dir: Path, timeout: float = 10.0) -> None:
        self.client = ControlClient(state_dir, timeout=timeout)

    def _call(self, command: str, **args: Any) -> Any:
        try:
            return self.client.call(command, **args)
        except (ControlError, ControllerUnavailable, ValueError) as exc:
            raise ActionFailed(str(exc)) from None

    def drain(self, agent: str, note: str = "", until: float | None = None) -> Any:
        args: dict[str, Any] = {"agent": agent}
        if note:
            args["note"] = note[:MAX_NOTE_CHARS]
        if until is not None:
            args["until"] = until
        return self._call("drain", **args)

    def resume(self, agent: str) -> Any:
        return self._call("resume", agent=agent)

    def cancel(self, job_id: str, note: str = "") -> Any:
        args: dict[str, Any] = {"job": job_id}
        if note:
            args["note"] = note[:MAX_NOTE_CHARS]
        return self._call("cancel", **args)
