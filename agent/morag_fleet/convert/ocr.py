"""Tesseract OCR through pytesseract, shared by the image and scanned-PDF paths.

`OMP_THREAD_LIMIT=1` matters: tesseract's OpenMP threads fight each other on small machines and
made one image take 1.75 s instead of 0.3 s on 2 cores. Slots run one job each, so one thread
per tesseract is the right size anyway. An operator may still set it differently.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from morag_fleet.convert.base import Availability, ConversionError

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

DEFAULT_LANGUAGE = "eng"
DEFAULT_TIMEOUT = 120.0


def tesseract_availability(language: str = DEFAULT_LANGUAGE) -> Availability:
    try:
        import pytesseract
    except ImportError:
        return Availability(False, "pytesseract not installed (pip extra 'image' or 'document')")
    if shutil.which("tesseract") is None:
        return Availability(False, "tesseract not found on PATH (apt install tesseract-ocr)")
    try:
        installed = set(pytesseract.get_languages(config=""))
    except pytesseract.TesseractError as exc:
        return Availability(False, f"tesseract does not run: {exc}")
    missing = [lang for lang in language.split("+") if lang not in installed]
    if missing:
        return Availability(False, f"tesseract language data missing: {', '.join(missing)}")
    return Availability(True)


def ocr_image(image: Any, language: str = DEFAULT_LANGUAGE,
              timeout: float = DEFAULT_TIMEOUT) -> str:
    """Text of a Pillow image, lines kept, blank runs collapsed."""
    import pytesseract

    try:
        text = pytesseract.image_to_string(image, lang=language, timeout=timeout)
    except RuntimeError as exc:  # pytesseract raises RuntimeError on its timeout
        raise ConversionError(f"OCR timed out after {timeout:.0f} s") from exc
    except pytesseract.TesseractError as exc:
        raise ConversionError(f"tesseract failed: {exc.message.strip()}") from None
    return tidy_ocr_text(text)


def tidy_ocr_text(text: str) -> str:
    """Tesseract separates blocks with blank lines; keep one blank line between paragraphs."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.replace("\f", "\n").splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return "\n\n".join(paragraphs)
