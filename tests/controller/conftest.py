from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.fleet import ControllerProc, PublisherProc


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short base directory: the control socket's path must fit in sun_path (108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="mfc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cleanup() -> Iterator[list]:
    """Processes to kill at the end of a test, whatever happened."""
    items: list = []
    yield items
    for item in reversed(items):
        if isinstance(item, PublisherProc):
            item.kill()
        elif isinstance(item, ControllerProc) and item.proc and item.proc.poll() is None:
            item.proc.kill()
            item.proc.wait()
