"""Builds the reference job server's ASGI app from its settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from ..log import get_logger
from .auth import BearerAuthMiddleware
from .config import ServerConfig
from .faults import ADMIN_PATH, FaultMiddleware
from .limits import UploadSizeLimit
from .models import FaultRule
from .routes import router
from .state import ServerState
from .validation import validation_error

log = get_logger(__name__)


async def sweep_forever(state: ServerState) -> None:
    """Lapsed leases are noticed even when nobody polls."""
    while True:
        await asyncio.sleep(state.config.sweep_interval)
        try:
            await state.sweep()
            await state.remove_finished_uploads()
        except Exception:  # a locked or broken database must not end the sweeps
            log.exception("sweep_failed")


def create_app(config: ServerConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServerState = app.state.server
        sweeper = asyncio.create_task(sweep_forever(state))
        log.info("jobserver_started", data_dir=str(config.data_dir), leases=config.lease_seconds)
        yield
        await state.signal.stop()
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        state.close()
        log.info("jobserver_stopped")

    app = FastAPI(title="morag-fleet reference job server", lifespan=lifespan)
    app.state.server = ServerState(config)
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(UploadSizeLimit, path=f"{router.prefix}/upload",
                       max_bytes=config.max_upload_bytes)
    if config.fault_injection:
        _add_fault_injection(app, app.state.server)
    if config.token:
        app.add_middleware(BearerAuthMiddleware, token=config.token)
    return app


def _add_fault_injection(app: FastAPI, state: ServerState) -> None:
    app.add_middleware(FaultMiddleware, rules=state.faults)

    @app.post(ADMIN_PATH)
    async def set_faults(rules: list[FaultRule], request: Request) -> dict[str, Any]:
        state.faults.replace(rules)
        log.warning("faults_set", rules=len(rules))
        return {"rules": state.faults.describe()}

    @app.get(ADMIN_PATH)
    async def list_faults() -> dict[str, Any]:
        return {"rules": state.faults.describe()}

    @app.delete(ADMIN_PATH)
    async def clear_faults() -> dict[str, Any]:
        state.faults.replace([])
        return {"rules": []}
