"""Shared inputs and converter instances for the converter tests.

The whisper model is loaded once per session: every audio, video and youtube test shares one
AudioConverter (exactly as a slot process reuses its converter between jobs).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.samples.generate import Speech, encode_audio, speech_with_gaps

SENTENCES = (
    "The garden committee met on a sunny morning to plan the spring planting.",
    "Everyone agreed that tomatoes and beans should grow along the southern fence.",
    "A new rain water tank will be installed next to the old wooden shed.",
    "The volunteers will meet again on the first Monday of next month.",
)


class Progress:
    """Records progress calls so tests can check they made sense."""

    def __init__(self) -> None:
        self.calls: list[tuple[float | None, str | None]] = []

    def __call__(self, fraction: float | None, message: str | None) -> None:
        self.calls.append((fraction, message))

    @property
    def fractions(self) -> list[float]:
        return [f for f, _ in self.calls if f is not None]


@pytest.fixture
def progress() -> Progress:
    return Progress()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech(media_dir: Path) -> Speech:
    return speech_with_gaps(SENTENCES, media_dir / "speech.wav", gap=1.5)


@pytest.fixture(scope="session")
def speech_mp3(speech: Speech, media_dir: Path) -> Path:
    return encode_audio(speech.path, media_dir / "speech.mp3")


@pytest.fixture(scope="session")
def audio_converter() -> AudioConverter:
    return AudioConverter()


def job_info_for(path: Path, content_type: str, mime_type: str = "") -> dict[str, Any]:
    return {"file_name": path.name, "content_type": content_type, "mime_type": mime_type,
            "file_size": path.stat().st_size, "checksum": "0" * 64}


@pytest.fixture
def job_info() -> Callable[..., dict[str, Any]]:
    return job_info_for


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (size-cap tests) are expected; anything else is shown."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def http_server(handler: Any) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def serve_dir() -> Iterator[Callable[[Path], str]]:
    """Serves a directory on loopback; returns its base URL."""
    with contextlib.ExitStack() as stack:
        def start(directory: Path) -> str:
            handler = functools.partial(_QuietHandler, directory=str(directory))
            return stack.enter_context(http_server(handler))

        yield start


def url_file(directory: Path, url: str) -> Path:
    path = directory / "source.url"
    path.write_text(url + "\n", encoding="utf-8")
    return path
