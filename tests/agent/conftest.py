"""Fixtures for agent tests: a real reference job server process and real agent processes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.controller.fleet import ControllerProc
from tests.support.agent_proc import SCRIPTED, AgentProcess
from tests.support.jobserver import JobServer, running_jobserver


@pytest.fixture
def jobserver(tmp_path: Path) -> Iterator[JobServer]:
    with running_jobserver(tmp_path / "server", faults=True) as server:
        yield server


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Agents that convert documents with the scripted test converter; all stopped at the end."""
    started: list[AgentProcess] = []

    def factory(api_url: str, worker_id: str = "agent-1", start: bool = True,
                **settings: Any) -> AgentProcess:
        settings.setdefault("converters", {"document": SCRIPTED})
        agent = AgentProcess(tmp_path / "agents", api_url, worker_id, **settings)
        started.append(agent)
        return agent.start() if start else agent

    yield factory
    for agent in started:
        if agent.alive:
            agent.kill()


@pytest.fixture
def make_doc(tmp_path: Path) -> Callable[[str, str], Path]:
    folder = tmp_path / "docs"
    folder.mkdir()

    def factory(name: str, text: str) -> Path:
        path = folder / name
        path.write_text(text)
        return path

    return factory


@pytest.fixture
def controller() -> Iterator[ControllerProc]:
    """A real controller in a short temporary directory: its control socket's path must fit."""
    base = Path(tempfile.mkdtemp(prefix="mfa-"))
    proc = ControllerProc(base).start()
    yield proc
    proc.stop()
    shutil.rmtree(base, ignore_errors=True)
