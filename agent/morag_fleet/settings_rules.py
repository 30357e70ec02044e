"""Checks for settings values that parse but would hurt later: NaN and infinite numbers, floats
where a count is meant, nested mappings of the wrong shape, URLs without a host, worker ids the
controller refuses, and API keys kept in files.

Each check raises `ValueError` with a message that finishes the sentence "<key> (from <source>)
...", so `settings.py` can name the key and where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from morag_fleet.wire.schema import MAX_NAME_LEN

Fail = Callable[[str, str], None]


def finite_float(value: Any) -> float:
    """A number that sleeps, timeouts and deadlines can use: NaN compares false with
    everything, so `poll_interval: .nan` passes `> 0` and then never waits."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {value!r}")
    return number


def exact_int(value: Any) -> int:
    """An integer as written: `2.9` slots must not quietly become 2."""
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"must be a whole number, got {value!r}")
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, int):
        return value
    raise ValueError(f"must be an integer, got {type(value).__name__}")


def check_timeouts(timeouts: Mapping[Any, Any], content_types: tuple[str, ...]) -> dict[str, float]:
    """`job_timeouts`: known content types to finite seconds > 0."""
    checked = {}
    for ctype, seconds in timeouts.items():
        if ctype not in content_types:
            raise ValueError(f"names unknown content type {ctype!r}; known: "
                             f"{', '.join(content_types)}")
        try:
            number = finite_float(seconds)
        except (TypeError, ValueError):
            raise ValueError(f"entry {ctype}: {seconds!r} is not a number of seconds") from None
        if number <= 0:
            raise ValueError(f"entry {ctype}: {seconds!r} must be > 0 seconds")
        checked[str(ctype)] = number
    return checked


def check_converter_options(options: Mapping[Any, Any], content_types: tuple[str, ...]) -> None:
    """`converter_options`: a mapping of option names per known content type, numbers finite."""
    for ctype, values in options.items():
        if ctype not in content_types:
            raise ValueError(f"names unknown content type {ctype!r}")
        if not isinstance(values, Mapping):
            raise ValueError(f"entry {ctype}: must be a mapping of option names to values, "
                             f"got {type(values).__name__} {values!r}")
        for name, value in values.items():
            if not isinstance(name, str):
                raise ValueError(f"entry {ctype}: option name {name!r} is not a string")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"entry {ctype}.{name}: must be a finite number, got {value!r}")


def check_converters(converters: Mapping[Any, Any], content_types: tuple[str, ...]) -> None:
    for ctype, backend in converters.items():
        if ctype not in content_types:
            raise ValueError(f"names unknown content type {ctype!r}")
        if not isinstance(backend, str) or not backend.strip():
            raise ValueError(f"entry {ctype}: must name a converter, got {backend!r}")


def check_api_url(url: str) -> None:
    """A URL the HTTP client can use: scheme, host and (if given) a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"has no host name: {url!r}")


def check_worker_id(worker_id: str) -> None:
    """The controller refuses every frame whose agent name is longer than its limit or not
    printable, so such an id would leave the agent invisible to it."""
    if not worker_id.strip():
        raise ValueError("must not be empty")
    if len(worker_id) > MAX_NAME_LEN:
        raise ValueError(f"is {len(worker_id)} characters; at most {MAX_NAME_LEN} are allowed "
                         "(the fleet controller's limit)")
    if not worker_id.isprintable():
        raise ValueError("must contain only printable characters")


def read_secret_file(path: str) -> str:
    """The API key from a file: kept out of the process's command line and environment."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text
