"""Markdown layouts MoRAG's chunker understands (docs/converters.md shows them).

Shared by every converter so that headers, timestamps and metadata keys stay identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from morag_fleet.convert.mimetype import detect_mime_type


def format_timestamp(seconds: float, force_hours: bool = False) -> str:
    """`MM:SS`, or `HH:MM:SS` from one hour on (or when the whole medium is that long)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours or force_hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def format_duration(seconds: float) -> str:
    """Durations are always shown as HH:MM:SS in metadata bullets."""
    return format_timestamp(seconds, force_hours=True)


def bullets(info: Mapping[str, Any]) -> str:
    """`- **Key**: value` lines, skipping empty values."""
    return "\n".join(
        f"- **{key}**: {value}" for key, value in info.items() if value not in (None, "")
    )


def word_count(text: str) -> int:
    return len(text.split())


def document_markdown(
    file_name: str, body: str, page_count: int | None, extra: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """`# Document: <file>` + `## Document Information` + body; returns markdown and metadata."""
    words = word_count(body)
    info: dict[str, Any] = {"Page Count": page_count, "Word Count": words}
    info.update(extra or {})
    markdown = f"# Document: {file_name}\n\n## Document Information\n\n{bullets(info)}\n\n{body}\n"
    metadata: dict[str, Any] = {"content_type": "document", "word_count": words}
    if page_count is not None:
        metadata["page_count"] = page_count
    return markdown, metadata


def segment_lines(segments: Iterable[tuple[float, str]], long_media: bool) -> list[str]:
    """One `[MM:SS] text` line per segment (`[HH:MM:SS]` when the medium reaches one hour)."""
    return [f"[{format_timestamp(start, long_media)}] {text.strip()}" for start, text in segments]


# Keys MoRAG sets itself; ours would override them (a worker temp path as source, a wrong job id).
FORBIDDEN_METADATA_KEYS = ("source_path", "remote_job_id")


def job_metadata(job_info: Mapping[str, Any], content_type: str) -> dict[str, Any]:
    """The per-job keys every result carries, taken from what the agent knows about the job."""
    metadata: dict[str, Any] = {"content_type": content_type}
    for key in ("file_name", "mime_type", "file_size", "checksum"):
        if job_info.get(key) not in (None, ""):
            metadata[key] = job_info[key]
    return metadata


def file_metadata(source: Path, job_info: Mapping[str, Any], content_type: str,
                  title: str | None = None, parsed_mime: str | None = None
                  ) -> tuple[str, dict[str, Any]]:
    """The original file name, and the keys every file-based result shares: the job's, a title
    (the file's own, else the name's stem), the extension of the file actually converted and a
    MIME type from the content (the download's header is octet-stream for every MoRAG file).
    `parsed_mime` is what the converter's own parser found (the media probe, Pillow)."""
    file_name = str(job_info.get("file_name") or source.name)
    metadata = job_metadata(job_info, content_type)
    metadata["title"] = title or Path(file_name).stem
    metadata["file_extension"] = source.suffix.lstrip(".").lower()
    metadata["mime_type"] = detect_mime_type(source, file_name, job_info.get("mime_type"),
                                             parsed_mime)
    return file_name, metadata


def url_metadata(job_info: Mapping[str, Any], content_type: str, url: str, title: str | None,
                 mime_type: str | None) -> dict[str, Any]:
    """The keys a URL job's result shares: the page's or video's title stands in for the file
    name (the job's file only holds the URL), the URL goes to `source_url`."""
    name = title_or_url(title, url)
    metadata = job_metadata(job_info, content_type)
    metadata |= {"file_name": name, "title": name, "source_url": url, "mime_type": mime_type}
    return metadata


def title_or_url(title: str | None, url: str) -> str:
    """A title on one line, or the URL's host and path when there is none."""
    clean = " ".join((title or "").split())
    if clean:
        return clean
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/") or url


def clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Drops empty values and the keys MoRAG must keep its own values for."""
    return {
        key: value
        for key, value in metadata.items()
        if key not in FORBIDDEN_METADATA_KEYS and value not in (None, "", [], {})
    }


def topic_header(title: str, start: float) -> str:
    """`# <Topic> [<start seconds>]`, the header MoRAG's chunker splits audio/video topics on."""
    clean = " ".join(title.split()) or "Untitled"
    return f"# {clean} [{int(start)}]"
