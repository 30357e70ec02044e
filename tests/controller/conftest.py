from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.fleet import ControllerProc, PublisherProc


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short base directory: the control socket's path must fit in sun_path."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="mfc-"))
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cleanup() -> Iterator[list]:
    """Processes to stop at the end of a test, whatever happened."""
    items: list = []
    yield items
    for item in reversed(items):
        if isinstance(item, PublisherProc):
            item.kill()
        elif isinstance(item, ControllerProc) and item.proc is not None:
            if item.proc.poll() is None:
                item.proc.kill()
                item.proc.wait()
