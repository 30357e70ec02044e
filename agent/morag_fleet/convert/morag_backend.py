"""The `morag` backend: delegate to MoRAG's own processor packages when they are installed.

Selected per content type (`converters: {audio: morag}`), off by default. It exists for operators
who want MoRAG's exact processing (speaker diarization, topic segmentation, its document
chunk hints) on a worker host. MoRAG's processors are async and their result types differ per
package, so the text and metadata are read duck-typed from the fields MoRAG's own remote
converter reads.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import (
    Availability,
    ConversionError,
    ConversionResult,
    ProgressCallback,
)
from morag_fleet.convert.markdown import clean_metadata, job_metadata
from morag_fleet.convert.web import read_url

# content type -> (module, processor class, method, whether the method takes a URL)
PROCESSORS: dict[str, tuple[str, str, str, bool]] = {
    "audio": ("morag_audio.processor", "AudioProcessor", "process", False),
    "video": ("morag_video.processor", "VideoProcessor", "process", False),
    "document": ("morag_document.processor", "DocumentProcessor", "process_file", False),
    "image": ("morag_image.processor", "ImageProcessor", "process", False),
    "web": ("morag_web.processor", "WebProcessor", "process_url", True),
    "youtube": ("morag_youtube.processor", "YouTubeProcessor", "process_url", True),
}
TEXT_PATHS = (  # where MoRAG's result types keep the produced text, in order of preference
    ("markdown",), ("transcript",), ("text_content",), ("document", "content"),
    ("content", "markdown_content"), ("content", "content"), ("audio_processing_result",
                                                             "transcript"),
)
SAFE_SCALARS = (str, int, float, bool)


class MoragConverter:
    """One per content type; the MoRAG processor is created on first use and kept."""

    name = "morag"

    def __init__(self, content_type: str, options: Mapping[str, Any] | None = None) -> None:
        if content_type not in PROCESSORS:
            raise KeyError(f"MoRAG has no processor for content type {content_type!r}")
        self.content_type = content_type
        self._processor: Any = None

    def available(self) -> Availability:
        module, cls, _, _ = PROCESSORS[self.content_type]
        package = module.split(".")[0]
        try:
            getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            return Availability(False, f"MoRAG package {package} not importable "
                                       f"({exc.name or exc}); install MoRAG's packages")
        except AttributeError:
            return Availability(False, f"{module} has no {cls} (unsupported MoRAG version)")
        return Availability(True)

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        module, cls, method, takes_url = PROCESSORS[self.content_type]
        if self._processor is None:
            self._processor = getattr(importlib.import_module(module), cls)()
        argument = read_url(source) if takes_url else str(source)
        progress(None, f"MoRAG {cls}")
        try:
            result = asyncio.run(_maybe_await(getattr(self._processor, method)(argument)))
        except ConversionError:
            raise
        except Exception as exc:  # MoRAG raises its own exception types
            raise ConversionError(f"MoRAG {cls} failed: {type(exc).__name__}: {exc}") from None
        return to_result(result, self.content_type, job_info)


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def to_result(result: Any, content_type: str, job_info: Mapping[str, Any]) -> ConversionResult:
    if getattr(result, "success", True) is False:
        raise ConversionError(str(getattr(result, "error_message", None) or "MoRAG failed"))
    text = next((t for t in (_dig(result, p) for p in TEXT_PATHS) if isinstance(t, str) and t),
                None)
    if text is None:
        raise ConversionError(f"MoRAG returned no text ({type(result).__name__})")
    raw = getattr(result, "metadata", None)
    raw = vars(raw) if raw is not None and not isinstance(raw, Mapping) else (raw or {})
    small = {k: v for k, v in raw.items() if isinstance(v, SAFE_SCALARS)}
    metadata = small | job_metadata(job_info, content_type)
    return ConversionResult(text, clean_metadata(metadata))


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if obj is None:
            return None
    return obj
