"""Writes the self-test samples from the texts in manifest.json (run once; the files are kept in
the repository, so agent hosts never need espeak-ng).

    python agent/morag_fleet/samples/selftest/regenerate.py

Needs espeak-ng, ffmpeg (libopus, libx264) and Pillow. sample.pdf is a copy of the demo's
samples/sample.pdf; sample.txt holds the same text for the plain-text document backend.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from morag_fleet.samples.generate import article_page, speech_with_gaps, text_image

HERE = Path(__file__).resolve().parent


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_speech(sentences: list[str]) -> None:
    """Mono Opus at a low bit rate: small, and still clear enough for whisper."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech_with_gaps(sentences, Path(tmp) / "speech.wav", gap=0.8, lead=0.3).path
        ffmpeg("-i", str(wav), "-map_metadata", "-1", "-ac", "1", "-c:a", "libopus",
               "-b:a", "24k", "-fflags", "+bitexact", str(HERE / "speech.ogg"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x72:rate=5", "-i", str(HERE / "speech.ogg"),
           "-shortest", "-map_metadata", "-1", "-c:v", "libx264", "-preset", "veryslow",
           "-crf", "40", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-ac", "1",
           "-fflags", "+bitexact", str(HERE / "speech.mp4"))


def make_image(lines: list[str]) -> None:
    from PIL import Image

    path = text_image(lines, HERE / "text.png", font_size=28, margin=24)
    with Image.open(path) as image:
        image.convert("L").save(path, optimize=True)


def make_page(title: str, paragraphs: list[str]) -> None:
    blocks = [("p", text) for text in paragraphs]
    html = article_page(title, "Self Test", "2024-01-01", blocks)
    (HERE / "page.html").write_text(html, encoding="utf-8")


def main() -> None:
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    types = manifest["types"]
    make_speech(manifest["speech"])
    make_image(types["image"]["lines"])
    make_page(types["web"]["title"], types["web"]["paragraphs"])


if __name__ == "__main__":
    main()
