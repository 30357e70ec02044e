"""structlog set-up shared by every program: JSON lines when not on a terminal (journald keeps
them as one field each), a readable console otherwise, and secrets redacted before rendering."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEY_PATTERN = re.compile(r"(api_key|token|secret|password|authorization)", re.IGNORECASE)
BEARER = r"(?P<bearer>Bearer\s+)[A-Za-z0-9._~+/=-]+"
_known_secrets: set[str] = set()
# One pattern for bearer tokens and every registered secret: a log event's strings are each
# scanned once (this runs for every event, several per job).
_mask_pattern = re.compile(BEARER, re.IGNORECASE)


def register_secret(value: str | None) -> None:
    """Values registered here are masked wherever they appear in a log event."""
    global _mask_pattern
    if value and len(value) >= 4 and value not in _known_secrets:
        _known_secrets.add(value)
        literals = "|".join(re.escape(v) for v in sorted(_known_secrets, key=len, reverse=True))
        _mask_pattern = re.compile(f"{BEARER}|{literals}", re.IGNORECASE)


def _masked(match: re.Match[str]) -> str:
    return f"{match['bearer']}***" if match["bearer"] else "***"


def _mask(text: str) -> str:
    return _mask_pattern.sub(_masked, text)


@functools.lru_cache(maxsize=1024)
def _names_a_secret(key: str) -> bool:
    return SECRET_KEY_PATTERN.search(key) is not None


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: keys that name secrets are hidden, known secret values masked."""
    for key, value in event.items():
        if _names_a_secret(key) and value not in (None, ""):
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
        # each process configures once, at its start: loggers may keep what they were given
        cache_logger_on_first_use=True,
    )


def _add_static(fields: dict[str, Any]) -> Any:
    def processor(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return processor


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
