"""The one small interface every converter implements.

A converter runs inside a slot process and may keep expensive state (a loaded model) on the
instance between jobs, which is why converters are objects and not functions. The agent core only
ever sees `Converter`, `ConversionResult`, `ConversionError` and the registry in `registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# progress(fraction in [0, 1] or None when unknown, short human message or None)
ProgressCallback = Callable[[float | None, str | None], None]


class ConversionError(Exception):
    """A conversion failed for a reason a person can act on (corrupt file, no audio, ...).

    The message is sent to MoRAG as the job's `error_message`, so it must be clear and must not
    leak local paths beyond the file's own name.
    """


@dataclass(frozen=True)
class ConversionResult:
    """Markdown MoRAG can ingest plus the metadata MoRAG merges into every chunk (keep it small)."""

    markdown: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    """Whether a converter can work on this host, and if not, why (shown by `morag-agent check`)."""

    ok: bool
    reason: str = ""


def packages_availability(extra: str, *modules: str) -> Availability:
    """Looks the packages up without importing them: `check` and the capability list stay fast
    and light even where a converter's libraries take seconds and hundreds of MB to import."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        return Availability(False, f"{', '.join(missing)} not installed (pip extra '{extra}')")
    return Availability(True)


@runtime_checkable
class Converter(Protocol):
    """Turns one source file into markdown.

    `options` holds the converter's settings from the agent config merged with the job's
    `task_options` (job wins). `source` is a file inside the job's private temp dir whose name is
    sanitised but keeps the original extension. `job_info` carries `file_name` (the original name),
    `content_type`, `mime_type`, `file_size` and `checksum` for the metadata.
    """

    name: str

    def available(self) -> Availability: ...

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult: ...
