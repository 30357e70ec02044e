"""Images: text rendered with Pillow's built-in font, EXIF, a decompression bomb."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.image import ImageConverter
from morag_fleet.convert.rapidocr_image import RapidOcrImageConverter, reading_order
from morag_fleet.samples.generate import text_image
from tests.convert.conftest import Progress, job_info_for
from tests.support.media import wer

LINES = (
    "Invoice number 48213 for garden supplies",
    "Total amount due: 1729 euros",
    "Payment reference 7731-A within 30 days",
    "Thank you for supporting the community garden",
)


@pytest.fixture(scope="module")
def text_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_image(LINES, tmp_path_factory.mktemp("img") / "invoice.png", font_size=32)


def ocr_section(markdown: str) -> str:
    return markdown.split("## Text Content (OCR)\n\n", 1)[1]


def test_png_text_is_read(text_png: Path, progress: Progress) -> None:
    result = ImageConverter().convert(text_png, {}, job_info_for(text_png, "image", "image/png"),
                                      progress)
    text = ocr_section(result.markdown)
    assert wer(" ".join(LINES), text) < 0.1
    for number in ("48213", "1729", "7731-A", "30"):
        assert number in text.split() or number + "." in text, number
    assert result.markdown.startswith("# Image Analysis: invoice.png\n\n## Image Information\n")
    meta = result.metadata
    assert meta["format"] == "PNG" and meta["content_type"] == "image"
    assert (meta["width"], meta["height"]) == Image.open(text_png).size
    assert meta["ocr_engine"] == "tesseract" and meta["file_extension"] == "png"
    assert progress.fractions[-1] == 1.0


def test_exif_and_orientation(text_png: Path, tmp_path: Path) -> None:
    """A photo stored sideways with an EXIF orientation tag is read upright."""
    jpeg = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = ("Canon", "EOS 5D",
                                                              "2024:05:01 10:00:00", 6)
    Image.open(text_png).convert("RGB").rotate(90, expand=True).save(jpeg, exif=exif,
                                                                      quality=95)
    result = ImageConverter().convert(jpeg, {}, job_info_for(jpeg, "image"), lambda f, m: None)
    meta = result.metadata
    assert (meta["camera_make"], meta["camera_model"]) == ("Canon", "EOS 5D")
    assert meta["date_time"] == "2024:05:01 10:00:00" and meta["orientation"] == 6
    assert "- **Camera**: Canon EOS 5D" in result.markdown
    assert wer(" ".join(LINES), ocr_section(result.markdown)) < 0.1


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 Mpixel, ~50 KB on disk
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ConversionError, match=r"bomb.png refused as a decompression bomb"):
        ImageConverter().convert(bomb, {}, job_info_for(bomb, "image"), lambda f, m: None)


def test_pixel_limit_is_configurable(text_png: Path) -> None:
    with pytest.raises(ConversionError, match=r"invoice.png refused as a decompression bomb"):
        ImageConverter().convert(text_png, {"max_pixels": 1000},
                                 job_info_for(text_png, "image"), lambda f, m: None)


def test_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("definitely not a png")
    with pytest.raises(ConversionError, match=r"fake.png is not an image"):
        ImageConverter().convert(fake, {}, job_info_for(fake, "image"), lambda f, m: None)


def test_truncated_image(text_png: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.png"
    cut.write_bytes(text_png.read_bytes()[:2000])
    with pytest.raises(ConversionError, match=r"cut.png has damaged image data"):
        ImageConverter().convert(cut, {}, job_info_for(cut, "image"), lambda f, m: None)


def test_rapidocr_backend(text_png: Path) -> None:
    converter = RapidOcrImageConverter()
    assert converter.available().ok
    result = converter.convert(text_png, {}, job_info_for(text_png, "image"), lambda f, m: None)
    assert result.metadata["ocr_engine"] == "rapidocr"
    assert wer(" ".join(LINES), ocr_section(result.markdown)) < 0.1


def test_reading_order_groups_lines() -> None:
    boxes = [[[200, 10], [300, 10], [300, 30], [200, 30]], [[10, 12], [100, 12], [100, 32],
                                                            [10, 32]],
             [[10, 60], [90, 60], [90, 80], [10, 80]]]
    assert reading_order(boxes, ["world", "hello", "second"]) == ["hello world", "second"]
