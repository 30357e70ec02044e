"""Tesseract OCR, shared by the image and scanned-PDF paths.

Tesseract's OpenMP threads fight each other on small machines (one image took several times
longer with them on 2 cores), and a slot converts one image at a time anyway, so tesseract runs
with `OMP_THREAD_LIMIT=1`. That limit goes into tesseract's own process environment and nowhere
else: set on the slot process it reached CTranslate2 too, which then returned empty transcripts.
pytesseract cannot pass an environment per call, so the OCR call runs the tesseract command
itself; pytesseract still answers which languages are installed.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from typing import Any

from morag_fleet.convert.base import Availability, ConversionError

DEFAULT_LANGUAGE = "eng"
DEFAULT_TIMEOUT = 120.0
TESSERACT_THREADS = 1
# modes PNG can hold; anything else (CMYK, YCbCr, ...) is converted to RGB first
PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")


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
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise ConversionError("tesseract is not installed on this worker")
    png = io.BytesIO()
    (image if image.mode in PNG_MODES else image.convert("RGB")).save(png, format="PNG")
    env = {**os.environ, "OMP_THREAD_LIMIT": str(TESSERACT_THREADS)}
    try:
        done = subprocess.run([tesseract, "stdin", "stdout", "-l", language],
                              input=png.getvalue(), capture_output=True, timeout=timeout,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"OCR timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConversionError(f"tesseract failed: {reason[-1] if reason else done.returncode}")
    return tidy_ocr_text(done.stdout.decode("utf-8", "replace"))


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
