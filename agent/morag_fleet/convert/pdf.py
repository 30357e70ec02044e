"""PDF -> per-page text with pypdfium2; pages without a text layer are rendered and OCRed.

Scanned pages are rendered at the resolution of the scan they contain (clamped to a sane range),
because upscaling a 150 dpi scan gains tesseract nothing and downscaling a 400 dpi one loses
accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.ocr import ocr_image

MIN_TEXT_CHARS = 16  # a page with less extractable text than this is treated as scanned
DEFAULT_OCR_DPI = 300
MIN_OCR_DPI, MAX_OCR_DPI = 150, 400

# pdfium's FPDF_GetLastError codes and what they mean to a person
PDFIUM_ERRORS = {
    1: "pdfium could not read it (unknown error)",
    2: "the file could not be read",
    3: "the file is not a PDF or is corrupt",
    4: "the PDF is encrypted and needs a password",
    5: "the PDF uses an unsupported security handler",
    6: "the PDF page is corrupt",
}


@dataclass(frozen=True)
class PdfPageText:
    number: int
    text: str
    ocr: bool


@dataclass(frozen=True)
class PdfOptions:
    password: str | None = None
    ocr: bool = True
    ocr_language: str = "eng"
    ocr_dpi: int | None = None  # None: the scan's own resolution
    min_text_chars: int = MIN_TEXT_CHARS


def open_pdf(path: Path, password: str | None = None) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path), password=password)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        reason = PDFIUM_ERRORS.get(code or -1) or _reason_from_text(str(exc))
        raise ConversionError(f"cannot open {path.name}: {reason}") from None


def _reason_from_text(message: str) -> str:
    lowered = message.lower()
    if "password" in lowered:
        return PDFIUM_ERRORS[4]
    if "format" in lowered:
        return PDFIUM_ERRORS[3]
    return message


def pdf_metadata(pdf: Any) -> dict[str, str]:
    """Title and author from the document information dictionary, when present."""
    raw = pdf.get_metadata_dict(skip_empty=True)
    return {key.lower(): str(value).strip() for key, value in raw.items()
            if key in ("Title", "Author") and str(value).strip().lower() not in ("", "untitled")}


def page_texts(pdf: Any, opts: PdfOptions) -> Iterator[PdfPageText]:
    """One page at a time, closing each page so long PDFs do not accumulate native memory."""
    for index in range(len(pdf)):
        page = pdf[index]
        try:
            textpage = page.get_textpage()
            text = textpage.get_text_bounded().replace("\r\n", "\n").strip()
            textpage.close()
            used_ocr = False
            if opts.ocr and len(text) < opts.min_text_chars and _has_images(page):
                text = ocr_page(page, opts)
                used_ocr = True
        finally:
            page.close()
        yield PdfPageText(index + 1, text, used_ocr)


def ocr_page(page: Any, opts: PdfOptions) -> str:
    dpi = opts.ocr_dpi or scan_dpi(page)
    bitmap = page.render(scale=dpi / 72)
    image = bitmap.to_pil()
    try:
        return ocr_image(image, opts.ocr_language)
    finally:
        image.close()
        bitmap.close()


def _image_objects(page: Any) -> list[Any]:
    import pypdfium2.raw as pdfium_c

    return list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3))


def _has_images(page: Any) -> bool:
    return bool(_image_objects(page))


def scan_dpi(page: Any) -> int:
    """Pixels per inch of the largest image on the page, clamped to [150, 400]."""
    best = 0.0
    for obj in _image_objects(page):
        try:
            px_width, _ = obj.get_px_size()
            left, _, right, _ = obj.get_pos()
        except Exception:  # an image pdfium cannot measure: fall back to the default
            continue
        width_in = (right - left) / 72
        if width_in > 0:
            best = max(best, px_width / width_in)
    if best <= 0:
        return DEFAULT_OCR_DPI
    return int(min(MAX_OCR_DPI, max(MIN_OCR_DPI, best)))
