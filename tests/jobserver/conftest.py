"""Fixtures for the reference job server's tests: the server as a real process on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.jobserver import JobServer, running_jobserver

TOKEN = "jobserver-test-token-4f9a"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[JobServer]:
    with running_jobserver(tmp_path / "server", faults=True) as running:
        yield running


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    folder = tmp_path / "sources"
    folder.mkdir()

    def factory(name: str = "source.txt", data: bytes = b"hello, job server\n") -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return factory
