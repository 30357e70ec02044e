"""Tesseract runs with one OpenMP thread, set in its own environment and nowhere else."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

import morag_fleet.convert.ocr as ocr


@pytest.fixture
def recording_tesseract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real tesseract behind a wrapper that writes down the OpenMP limit it was given."""
    real = shutil.which("tesseract")
    assert real is not None
    record = tmp_path / "omp.txt"
    wrapper = tmp_path / "bin" / "tesseract"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "${{OMP_THREAD_LIMIT:-unset}}" >> {record}\n'
                       f'exec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    return record


def test_tesseract_gets_one_thread_in_its_own_environment(recording_tesseract: Path) -> None:
    image = Image.new("RGB", (900, 120), "white")
    ImageDraw.Draw(image).text((20, 30), "Invoice 48213 paid", fill="black",
                               font=ImageFont.load_default(size=48))
    text = ocr.ocr_image(image)
    assert "48213" in text
    assert recording_tesseract.read_text().split() == ["1"]
    assert "OMP_THREAD_LIMIT" not in os.environ  # the OCR path changed nothing process-wide


def test_cmyk_images_are_read_too(recording_tesseract: Path) -> None:
    image = Image.new("CMYK", (700, 120), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((20, 30), "Order 5521", fill=(0, 0, 0, 255),
                               font=ImageFont.load_default(size=48))
    assert "5521" in ocr.ocr_image(image)


def test_a_missing_language_is_a_clear_error(recording_tesseract: Path) -> None:
    with pytest.raises(ocr.ConversionError, match="tesseract failed"):
        ocr.ocr_image(Image.new("L", (50, 50), 255), language="xx_not_installed")
