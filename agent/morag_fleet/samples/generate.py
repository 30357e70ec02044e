"""Generators for small, real media with known content: speech (espeak-ng), video (ffmpeg
testsrc), images with rendered text (Pillow's built-in font) and an article page.

Used by the demo and by the tests, which check what the converters read back against the known
content. No system fonts, no network, no downloaded models.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Speech:
    """A WAV of sentences with known start times (seconds)."""

    path: Path
    sentences: tuple[str, ...]
    starts: tuple[float, ...]
    duration: float


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} is needed to generate this sample (see .ci/bootstrap)")
    return found


def speak(text: str, dest: Path, words_per_minute: int = 150) -> Path:
    """espeak-ng's voice for one sentence, as a 22.05 kHz mono WAV."""
    subprocess.run([_require("espeak-ng"), "-s", str(words_per_minute), "-w", str(dest), text],
                   check=True, capture_output=True)
    return dest


def speech_with_gaps(sentences: Sequence[str], dest: Path, gap: float = 1.5,
                     lead: float = 0.5) -> Speech:
    """Sentences joined with `gap` seconds of silence; their start times are returned exactly."""
    starts: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, wave.open(str(dest), "wb") as out:
        position = 0
        params_set = False
        for index, sentence in enumerate(sentences):
            with wave.open(str(speak(sentence, Path(tmp) / f"{index}.wav")), "rb") as part:
                if not params_set:
                    out.setparams(part.getparams())
                    rate, width = part.getframerate(), part.getsampwidth()
                    params_set = True
                silence = int((lead if index == 0 else gap) * rate)
                out.writeframes(b"\x00" * silence * width)
                position += silence
                starts.append(position / rate)
                frames = part.readframes(part.getnframes())
                out.writeframes(frames)
                position += len(frames) // width
        out.writeframes(b"\x00" * int(0.5 * rate) * width)
        position += int(0.5 * rate)
    return Speech(dest, tuple(sentences), tuple(starts), position / rate)


def video_with_audio(audio: Path, dest: Path, size: str = "320x240", rate: int = 25) -> Path:
    """H.264/AAC MP4: ffmpeg's test pattern for as long as the audio lasts."""
    subprocess.run(
        [_require("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc=size={size}:rate={rate}", "-i", str(audio), "-shortest",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         str(dest)], check=True, capture_output=True)
    return dest


def silent_video(dest: Path, seconds: float = 3.0, size: str = "160x120") -> Path:
    subprocess.run(
        [_require("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc=size={size}:rate=10", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dest)],
        check=True, capture_output=True)
    return dest


def encode_audio(wav: Path, dest: Path) -> Path:
    """Any format ffmpeg can write, chosen by `dest`'s extension (mp3, m4a, ogg...)."""
    subprocess.run([_require("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", str(wav),
                    str(dest)], check=True, capture_output=True)
    return dest


def text_image(lines: Sequence[str], dest: Path, font_size: int = 36,
               margin: int = 40) -> Path:
    """Black text on white with Pillow's built-in scalable font (no system font needed)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)
    line_height = int(font_size * 1.8)
    width = max(int(font.getlength(line)) for line in lines) + 2 * margin
    image = Image.new("RGB", (width, line_height * len(lines) + 2 * margin), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * line_height), line, font=font, fill="black")
    image.save(dest)
    return dest


ARTICLE_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="author" content="{author}">
<meta property="article:published_time" content="{date}"></head>
<body>
<header><nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/shop">Shop</a></li>
<li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li></ul></nav></header>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
<button>Accept all cookies</button></div>
<aside class="advertisement ad-banner"><p>Sponsored: buy discount garden gnomes today!</p></aside>
<main><article>
<h1>{title}</h1>
{body}
</article></main>
<section id="comments" class="comments"><h2>Comments</h2>
<div class="comment"><p>Commenter Bob says this article changed his life forever.</p></div>
<div class="comment"><p>Commenter Alice wonders about watering at night.</p></div></section>
<footer><p>Footer: copyright notice and privacy policy links.</p></footer>
</body></html>
"""


def article_page(title: str, author: str, date: str, blocks: Sequence[tuple[str, str]]) -> str:
    """HTML with an article (blocks of ('h2'|'p'|'table', content)) wrapped in page junk."""
    parts = []
    for kind, content in blocks:
        parts.append(content if kind == "table" else f"<{kind}>{content}</{kind}>")
    return ARTICLE_TEMPLATE.format(title=title, author=author, date=date, body="\n".join(parts))
