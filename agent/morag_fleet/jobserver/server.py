"""Runs the app under one uvicorn worker in the foreground. One worker because claims are
serialised through one SQLite writer and long-poll wake-ups live in this process's memory."""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn

from .app import create_app
from .config import ServerConfig

GRACEFUL_SHUTDOWN_SECONDS = 10


class JobServer(uvicorn.Server):
    """On SIGTERM/SIGINT, long polls are released at once so shutdown does not wait them out,
    and a clean shutdown exits 0 (uvicorn would re-raise the signal and die by it)."""

    def __init__(self, config: uvicorn.Config, app_state: object) -> None:
        super().__init__(config)
        self.app_state = app_state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()
        signal = self.app_state.signal  # type: ignore[attr-defined]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(signal.stop()))


def serve(config: ServerConfig, host: str, port: int) -> None:
    app = create_app(config)
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    JobServer(uv_config, app.state.server).run()
