"""The optional `rapidocr` image backend (`converters: {image: rapidocr}`).

Slower and heavier than tesseract, but it reads rotated, blurred and noisy photos that tesseract
gets mostly wrong. Its ONNX models ship in the wheel, so it works offline. The engine is built
once per slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from morag_fleet.convert.base import Availability, ConversionError, packages_availability
from morag_fleet.convert.image import ImageConverter
from morag_fleet.cpu import default_threads

LINE_TOLERANCE = 0.5  # boxes whose vertical centres differ by < half a box height share a line


class RapidOcrImageConverter(ImageConverter):
    name = "rapidocr"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._engine: Any = None

    def available(self) -> Availability:
        return packages_availability("image-hard", "onnxruntime", "rapidocr")

    def ocr(self, image: Any, options: Mapping[str, Any]) -> str:
        import numpy as np

        if self._engine is None:
            from rapidocr import RapidOCR

            # an explicit count: onnxruntime's own default takes every core of the host
            threads = int(options.get("threads") or default_threads())
            self._engine = RapidOCR(params={
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        try:
            result = self._engine(np.asarray(image))
        except Exception as exc:  # onnxruntime raises many types
            raise ConversionError(f"rapidocr failed: {type(exc).__name__}: {exc}") from None
        if result.boxes is None or result.txts is None:
            return ""
        return "\n".join(reading_order(list(result.boxes), list(result.txts)))


def reading_order(boxes: list[Any], texts: list[str]) -> list[str]:
    """Groups detected boxes into lines top to bottom, each line left to right."""
    items = []
    for box, text in zip(boxes, texts, strict=True):
        ys = [float(point[1]) for point in box]
        xs = [float(point[0]) for point in box]
        items.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), text))
    items.sort()
    lines: list[list[tuple[float, str]]] = []
    last_centre, last_height = None, 0.0
    for centre, height, left, text in items:
        if last_centre is None or abs(centre - last_centre) > LINE_TOLERANCE * max(height,
                                                                                  last_height):
            lines.append([])
            last_centre, last_height = centre, height
        lines[-1].append((left, text))
    return [" ".join(text for _, text in sorted(line)) for line in lines]
