"""structlog set-up shared by every program: JSON lines when not on a terminal (journald keeps
them as one field each), a readable console otherwise, and secrets redacted before rendering."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEY_PATTERN = re.compile(r"(api_key|token|secret|password|authorization)", re.IGNORECASE)
BEARER_PATTERN = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Values registered here are masked wherever they appear in a log event."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def _mask(text: str) -> str:
    for secret in _known_secrets:
        text = text.replace(secret, "***")
    return BEARER_PATTERN.sub(r"\1***", text)


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: keys that name secrets are hidden, known secret values masked."""
    for key, value in list(event.items()):
        if SECRET_KEY_PATTERN.search(key) and value not in (None, ""):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = _mask(value)
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None,
                      **static: Any) -> None:
    """`fmt` is auto (console on a TTY, JSON otherwise), json or console. `static` fields (the
    worker id) go into every event from every thread."""
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_static(static),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _add_static(fields: dict[str, Any]) -> Any:
    def processor(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return processor


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
