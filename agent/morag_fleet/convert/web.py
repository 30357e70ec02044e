"""Web pages -> their main content as markdown under a `# <title>` heading.

The job's source file holds the URL. The page is fetched with `httpfetch` (limits, address
checks) and trafilatura keeps the article: menus, cookie banners, ads and comments are dropped,
headings and tables stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import (
    Availability,
    ConversionError,
    ConversionResult,
    ProgressCallback,
    packages_availability,
)
from morag_fleet.convert.httpfetch import FetchLimits, fetch
from morag_fleet.convert.markdown import clean_metadata, url_metadata, word_count

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_URL_FILE_BYTES = 64 * 1024


def read_url(source: Path) -> str:
    """The first non-empty line of the job's source file."""
    if source.stat().st_size > MAX_URL_FILE_BYTES:
        raise ConversionError("the source file is too large to hold a URL")
    for line in source.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    raise ConversionError("the source file holds no URL")


def fetch_limits(options: Mapping[str, Any]) -> FetchLimits:
    defaults = FetchLimits()
    return FetchLimits(
        max_bytes=int(options.get("max_bytes", defaults.max_bytes)),
        connect_timeout=float(options.get("connect_timeout", defaults.connect_timeout)),
        read_timeout=float(options.get("read_timeout", defaults.read_timeout)),
        total_timeout=float(options.get("total_timeout", defaults.total_timeout)),
        max_redirects=int(options.get("max_redirects", defaults.max_redirects)),
        allow_private=bool(options.get("allow_private", False)),
    )


class WebConverter:
    name = "trafilatura"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._check_options = dict(options or {})

    def available(self) -> Availability:
        return packages_availability("web", "trafilatura")

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        url = read_url(source)
        progress(None, "fetching page")
        page = fetch(url, fetch_limits(options), HTML_TYPES)
        progress(0.5, "extracting content")
        html = page.body.decode(page.encoding, errors="replace") if page.encoding else page.body
        body, facts = extract_article(html, page.url)
        metadata = facts | url_metadata(job_info, "web", url, facts.get("title"),
                                        page.content_type or "text/html")
        metadata |= {"url": url, "final_url": page.url if page.url != url else None,
                     "word_count": word_count(body),
                     "language": facts.get("language") or options.get("language")}
        markdown = with_title(metadata["title"], body)
        progress(1.0, "done")
        return ConversionResult(markdown, clean_metadata(metadata))


def extract_article(html: str | bytes, url: str) -> tuple[str, dict[str, Any]]:
    """Main content as markdown plus title/author/date/site name; an empty page is an error."""
    import trafilatura

    body = trafilatura.extract(
        html, url=url, output_format="markdown", include_comments=False, include_tables=True,
        include_formatting=True, include_links=False, include_images=False,
    )
    if not body or not body.strip():
        raise ConversionError(f"no readable main content found at {url[:120]}")
    meta = trafilatura.extract_metadata(html, default_url=url)
    facts: dict[str, Any] = {}
    if meta is not None:
        facts = {"title": meta.title, "author": meta.author, "date": meta.date,
                 "sitename": meta.sitename, "description": _short(meta.description)}
    facts["language"] = page_language(html)
    return _tidy(body), facts


def page_language(html: str | bytes) -> str | None:
    """The `<html lang>` attribute's primary tag (`en-GB` -> `en`), when the page declares one."""
    import lxml.etree
    import lxml.html

    try:
        lang = lxml.html.document_fromstring(html).get("lang")
    except (lxml.etree.ParserError, ValueError):
        return None
    return lang.split("-")[0].strip().lower() or None if lang else None


def with_title(title: str, body: str) -> str:
    """`# <title>` first, unless the article already opens with exactly that heading."""
    heading = f"# {' '.join(title.split())}"
    if body.lstrip().startswith(heading + "\n") or body.strip() == heading:
        return body.strip() + "\n"
    return f"{heading}\n\n{body.strip()}\n"


def _tidy(body: str) -> str:
    """trafilatura leaves trailing blanks in table rows; markdown does not need them."""
    return "\n".join(line.rstrip() for line in body.splitlines()).strip()


def _short(text: str | None, limit: int = 300) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."
