"""Images -> MoRAG's image layout: Pillow metadata (format, size, EXIF) and OCR text.

Pillow's decompression-bomb guard stays on and is made strict: an image whose header claims more
pixels than `max_pixels` fails before any pixel is decoded, instead of eating the slot's memory.
"""

from __future__ import annotations

import warnings
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
from morag_fleet.convert.markdown import bullets, clean_metadata, file_metadata, word_count
from morag_fleet.convert.ocr import ocr_image, tesseract_availability

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default limit (~ 0.25 GiB of 24-bit RGB)
MAX_FRAMES = 20  # multi-page TIFFs: OCR at most this many frames
EXIF_FIELDS = {  # EXIF tag id -> metadata key; a few useful, small ones
    0x010F: "camera_make",
    0x0110: "camera_model",
    0x0132: "date_time",
    0x0131: "software",
    0x0112: "orientation",
}


def open_image(path: Path, max_pixels: int) -> Any:
    """Opens lazily and checks the claimed size before decoding anything."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ConversionError(f"{path.name} refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ConversionError(f"{path.name} is not an image format Pillow can read") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ConversionError(f"{path.name} refused as a decompression bomb: {width}x{height} "
                              f"pixels exceeds the limit of {max_pixels}")
    return image


def pillow_mime_type(image_format: str | None) -> str | None:
    """Pillow names the MIME type of each format it decodes; that beats the file's name."""
    from PIL import Image

    return Image.MIME.get(image_format) if image_format else None


def exif_metadata(image: Any) -> dict[str, Any]:
    exif = image.getexif()
    found: dict[str, Any] = {}
    for tag, key in EXIF_FIELDS.items():
        value = exif.get(tag)
        if value not in (None, ""):
            found[key] = str(value).strip("\x00 ") if not isinstance(value, int) else value
    return found


class ImageConverter:
    """Tesseract OCR (the fast default). Subclasses swap `ocr` for another engine."""

    name = "tesseract"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._check_options = dict(options or {})

    def available(self) -> Availability:
        pillow = packages_availability("image", "PIL")
        if not pillow.ok:
            return pillow
        return tesseract_availability(self._check_options.get("ocr_language", "eng"))

    def ocr(self, image: Any, options: Mapping[str, Any]) -> str:
        return ocr_image(image, str(options.get("ocr_language", "eng")))

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        max_pixels = int(options.get("max_pixels", DEFAULT_MAX_PIXELS))
        image = open_image(source, max_pixels)
        try:
            facts = {"format": image.format, "width": image.width, "height": image.height,
                     "mode": image.mode, "frame_count": getattr(image, "n_frames", 1)}
            exif = exif_metadata(image)
            text = self._ocr_frames(image, options, progress)
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's ways to say "damaged"
            raise ConversionError(f"{source.name} has damaged image data: {exc}") from None
        finally:
            image.close()
        file_name, metadata = file_metadata(source, job_info, "image",
                                            parsed_mime=pillow_mime_type(facts["format"]))
        metadata = facts | exif | metadata  # the image's own fields never replace the job's
        metadata |= {"ocr_engine": self.name, "word_count": word_count(text),
                     "language": options.get("language")}
        if metadata["frame_count"] == 1:
            del metadata["frame_count"]
        return ConversionResult(image_markdown(file_name, facts, exif, text),
                                clean_metadata(metadata))

    def _ocr_frames(self, image: Any, options: Mapping[str, Any],
                    progress: ProgressCallback) -> str:
        from PIL import ImageOps

        frames = min(getattr(image, "n_frames", 1), MAX_FRAMES)
        texts: list[str] = []
        for index in range(frames):
            image.seek(index)
            frame = ImageOps.exif_transpose(image.convert("RGB"))
            texts.append(self.ocr(frame, options))
            progress((index + 1) / frames, f"OCR frame {index + 1}/{frames}")
        return "\n\n".join(t for t in texts if t)


def image_markdown(file_name: str, facts: Mapping[str, Any], exif: Mapping[str, Any],
                   text: str) -> str:
    info = {"Format": facts.get("format"), "Dimensions": f"{facts['width']}x{facts['height']}",
            "Mode": facts.get("mode"), "Camera": " ".join(
                str(exif[k]) for k in ("camera_make", "camera_model") if k in exif) or None,
            "Taken": exif.get("date_time")}
    body = text or "_No text found in the image._"
    return (f"# Image Analysis: {file_name}\n\n## Image Information\n\n{bullets(info)}\n\n"
            f"## Text Content (OCR)\n\n{body}\n")
