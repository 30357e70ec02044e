"""Converters vs the libraries they wrap, side by side in one run (not collected by pytest).

    .venv/bin/python tests/bench/bench_converters.py [--pages 200] [--speech-repeats 3]

- PDF: pages/s of DocumentConverter vs pypdfium2 text extraction called directly.
- Audio: realtime factor of AudioConverter (ffmpeg extraction + windowed faster-whisper) vs
  faster-whisper's `transcribe(path)` on the same file, same model, same settings.
- Audio: one job on a cold converter (model load included) vs on a warm one.
Each measurement is the best of `--rounds` runs, alternating the two sides.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.convert.conftest import SENTENCES
from tests.support.media import page_sentences, text_pdf

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.document import DocumentConverter
from morag_fleet.convert.whisper import default_model_dir
from morag_fleet.samples.generate import encode_audio, speech_with_gaps

INFO = {"file_name": "bench", "content_type": "bench"}


def best_of(rounds: int, *runs: Callable[[], object]) -> list[float]:
    """Best wall time of each callable over `rounds`, alternating them to share noise."""
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def bench_pdf(workdir: Path, pages: int, rounds: int) -> list[tuple[str, str, str, str]]:
    import pypdfium2 as pdfium

    pdf = text_pdf(workdir / "bench.pdf", page_sentences(pages, words_per_page=120))
    converter = DocumentConverter()

    def direct() -> None:
        document = pdfium.PdfDocument(str(pdf))
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            textpage.get_text_bounded()
            textpage.close()
            page.close()
        document.close()

    def inside() -> None:
        converter.convert(pdf, {}, INFO, lambda f, m: None)

    ours, theirs = best_of(rounds, inside, direct)
    return [("PDF text", f"{pages} pages", f"{pages / ours:,.0f} pages/s",
             f"{pages / theirs:,.0f} pages/s  (ratio {theirs / ours:.2f})")]


def bench_audio(workdir: Path, repeats: int, rounds: int) -> list[tuple[str, str, str, str]]:
    from faster_whisper import WhisperModel

    speech = speech_with_gaps(SENTENCES * repeats, workdir / "speech.wav", gap=1.0)
    audio = encode_audio(speech.path, workdir / "speech.mp3")
    model_dir = str(default_model_dir())
    options = {"beam_size": 5, "word_timestamps": True}

    started = time.perf_counter()
    cold = AudioConverter()
    cold.convert(audio, options, INFO, lambda f, m: None)
    cold_seconds = time.perf_counter() - started
    started = time.perf_counter()
    cold.convert(audio, options, INFO, lambda f, m: None)
    warm_seconds = time.perf_counter() - started

    direct_model = WhisperModel(model_dir, device="cpu", compute_type="int8")

    def direct() -> None:
        segments, _ = direct_model.transcribe(str(audio), beam_size=5, word_timestamps=True)
        list(segments)

    def inside() -> None:
        cold.convert(audio, options, INFO, lambda f, m: None)

    ours, theirs = best_of(rounds, inside, direct)
    length = speech.duration
    return [
        ("Audio tiny.en", f"{length:.0f} s speech", f"{length / ours:.1f}x realtime",
         f"{length / theirs:.1f}x realtime  (ratio {theirs / ours:.2f})"),
        ("Audio job cold vs warm", f"{length:.0f} s speech", f"warm {warm_seconds:.2f} s",
         f"cold {cold_seconds:.2f} s (model load incl.)"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--speech-repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_pdf(Path(tmp), args.pages, args.rounds)
        rows += bench_audio(Path(tmp), args.speech_repeats, args.rounds)
    header = ("benchmark", "input", "inside the converter", "library directly")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
