"""TXT and Markdown sources: passed through with MoRAG's document layout around them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import (
    Availability,
    ConversionError,
    ConversionResult,
    ProgressCallback,
)
from morag_fleet.convert.markdown import clean_metadata, document_markdown, file_metadata

MAX_TEXT_BYTES = 64 * 1024 * 1024


class TextConverter:
    """Plain text needs no library; decoding errors are replaced rather than failing the job."""

    name = "text"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._check_options = dict(options or {})

    def available(self) -> Availability:
        return Availability(True)

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        size = source.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise ConversionError(f"text file too large ({size} bytes > {MAX_TEXT_BYTES})")
        raw = source.read_bytes()
        if b"\x00" in raw[:8192]:
            raise ConversionError("file is binary, not text")
        text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").strip()
        progress(1.0, "text read")
        file_name, metadata = file_metadata(source, job_info, "document")
        markdown, facts = document_markdown(file_name, text, page_count=None)
        metadata |= facts
        return ConversionResult(markdown, clean_metadata(metadata))
