"""Documents -> MoRAG's document layout: PDF via pypdfium2 (+OCR), Office and HTML via markitdown,
TXT/MD passed through. The format is taken from the content itself when the extension lies."""

from __future__ import annotations

import re
import zipfile
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
from morag_fleet.convert.markdown import clean_metadata, document_markdown, file_metadata
from morag_fleet.convert.ocr import tesseract_availability
from morag_fleet.convert.pdf import PdfOptions, open_pdf, page_texts, pdf_metadata
from morag_fleet.convert.text import TextConverter

MARKITDOWN_FORMATS = {"docx", "pptx", "xlsx", "html", "htm", "csv"}
TEXT_FORMATS = {"txt", "md", "markdown", "text"}
OOXML_PARTS = {"word/": "docx", "ppt/": "pptx", "xl/": "xlsx"}
SLIDE_MARK = re.compile(r"^<!-- Slide number: \d+ -->$", re.MULTILINE)
SHEET_HEADING = re.compile(r"^## .+$", re.MULTILINE)


def sniff_format(path: Path) -> str:
    """The document's real format: magic bytes first, the extension only as a tie-breaker."""
    with path.open("rb") as handle:
        head = handle.read(1024)
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _ooxml_kind(path) or path.suffix.lstrip(".").lower()
    extension = path.suffix.lstrip(".").lower()
    if extension == "pdf":
        return "pdf"  # claims to be a PDF but has no header: let pdfium say what is wrong
    lowered = head.lstrip().lower()
    if extension not in TEXT_FORMATS and lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    return extension or "txt"


def _ooxml_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise ConversionError(f"{path.name} is a damaged ZIP/Office file") from None
    for prefix, kind in OOXML_PARTS.items():
        if any(name.startswith(prefix) for name in names):
            return kind
    return None


class DocumentConverter:
    """Keeps one MarkItDown instance per slot (its import and set-up are slow)."""

    name = "pypdfium2+markitdown"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._markitdown: Any = None
        self._text = TextConverter()
        self._check_options = dict(options or {})

    def available(self) -> Availability:
        packages = packages_availability("document", "pypdfium2", "markitdown")
        if not packages.ok:
            return packages
        if self._check_options.get("ocr", True):
            ocr = tesseract_availability(self._check_options.get("ocr_language", "eng"))
            if not ocr.ok:
                return Availability(False, f"scanned-PDF OCR unavailable: {ocr.reason}")
        return Availability(True)

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        kind = sniff_format(source)
        file_name = str(job_info.get("file_name") or source.name)
        if kind == "pdf":
            markdown, metadata = self._pdf(source, file_name, options, progress)
        elif kind in MARKITDOWN_FORMATS:
            markdown, metadata = self._office(source, file_name, kind)
        elif kind in TEXT_FORMATS:
            result = self._text.convert(source, options, job_info, progress)
            markdown, metadata = result.markdown, dict(result.metadata)
        else:
            raise ConversionError(f"unsupported document format {kind!r} ({file_name})")
        _, shared = file_metadata(source, job_info, "document", metadata.pop("title", None))
        metadata = shared | metadata
        metadata["file_extension"] = Path(file_name).suffix.lstrip(".").lower() or kind
        if options.get("language"):
            metadata["language"] = options["language"]
        progress(1.0, "done")
        return ConversionResult(markdown, clean_metadata(metadata))

    def _pdf(self, source: Path, file_name: str, options: Mapping[str, Any],
             progress: ProgressCallback) -> tuple[str, dict[str, Any]]:
        opts = PdfOptions(
            password=options.get("password"),
            ocr=bool(options.get("ocr", True)),
            ocr_language=str(options.get("ocr_language", "eng")),
            ocr_dpi=int(options["ocr_dpi"]) if options.get("ocr_dpi") else None,
        )
        pdf = open_pdf(source, opts.password)
        try:
            info = pdf_metadata(pdf)
            total = len(pdf)
            parts: list[str] = []
            ocr_pages = 0
            for page in page_texts(pdf, opts):
                parts.append(f"## Page {page.number}\n\n{page.text}".rstrip())
                ocr_pages += page.ocr
                progress(page.number / max(total, 1), f"page {page.number}/{total}")
        finally:
            pdf.close()
        extra = {"OCR Pages": ocr_pages or None, "Title": info.get("title")}
        markdown, metadata = document_markdown(file_name, "\n\n".join(parts), total, extra)
        metadata |= {"title": info.get("title"), "author": info.get("author"),
                     "ocr_pages": ocr_pages or None}
        return markdown, metadata

    def _office(self, source: Path, file_name: str, kind: str) -> tuple[str, dict[str, Any]]:
        body = self._markitdown_text(source, kind)
        pages: int | None = None
        if kind == "pptx":
            pages = len(SLIDE_MARK.findall(body))
        elif kind == "xlsx":
            pages = len(SHEET_HEADING.findall(body))
        label = {"pptx": "Slide Count", "xlsx": "Sheet Count"}.get(kind)
        extra = {label: pages} if label else None
        markdown, metadata = document_markdown(file_name, body, None, extra)
        if pages is not None:
            metadata["page_count"] = pages
        return markdown, metadata

    def _markitdown_text(self, source: Path, kind: str) -> str:
        if self._markitdown is None:
            from markitdown import MarkItDown

            self._markitdown = MarkItDown(enable_plugins=False)
        try:
            result = self._markitdown.convert_local(source, file_extension=f".{kind}")
        except Exception as exc:  # markitdown wraps every parser failure in its own types
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ConversionError(f"cannot read {source.name} as {kind.upper()}: "
                                  f"{reason[:300]}") from None
        return result.markdown.strip()

