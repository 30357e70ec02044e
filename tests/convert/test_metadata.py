"""Result metadata: MIME types from the content (MoRAG sends every file as octet-stream) and
titles instead of the `.url` file's name for web and youtube jobs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.document import DocumentConverter
from morag_fleet.convert.image import ImageConverter
from morag_fleet.convert.markdown import title_or_url
from morag_fleet.convert.media import probe
from morag_fleet.convert.mimetype import detect_mime_type, media_mime_type
from morag_fleet.convert.video import VideoConverter
from morag_fleet.convert.web import WebConverter
from morag_fleet.convert.youtube import YoutubeConverter
from morag_fleet.samples import ARTICLE_BLOCKS
from morag_fleet.samples.generate import article_page, silent_video, text_image
from tests.convert.conftest import url_file
from tests.support.media import sales_docx, text_pdf

OCTET = "application/octet-stream"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TONE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
# whisper settles silence at once; a tone sends it through every temperature fallback
SILENCE = ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2"]
PICTURE = ["-f", "lavfi", "-i", "testsrc=duration=1:size=64x48:rate=10"]
ALLOW = {"allow_private": True}


def ffmpeg(dest: Path, *args: str) -> Path:
    """A real file written by ffmpeg from its generated test sources."""
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-y", *args,
                    str(dest)], check=True, capture_output=True)
    return dest


def octet_job(path: Path, content_type: str, file_name: str | None = None) -> dict[str, Any]:
    """What the agent knows of a MoRAG download: the header says octet-stream for everything."""
    return {"file_name": file_name or path.name, "content_type": content_type,
            "mime_type": OCTET, "file_size": path.stat().st_size, "checksum": "0" * 64}


def no_progress(fraction: float | None, message: str | None) -> None:
    pass


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("tone.mp3", TONE, "audio/mpeg"),
    ("tone.wav", TONE, "audio/wav"),
    ("tone.m4a", TONE, "audio/mp4"),
    ("tone.ogg", [*TONE, "-c:a", "libvorbis"], "audio/ogg"),
    ("tone.flac", TONE, "audio/flac"),
    ("tone.webm", [*TONE, "-c:a", "libopus"], "audio/webm"),
    ("clip.mp4", [*PICTURE, *TONE, "-shortest", "-c:v", "libx264"], "video/mp4"),
    ("clip.mov", [*PICTURE, "-c:v", "libx264"], "video/quicktime"),
    ("clip.webm", [*PICTURE, "-c:v", "libvpx"], "video/webm"),
    ("clip.mkv", [*PICTURE, "-c:v", "libx264"], "video/x-matroska"),
])
def test_media_type_from_the_probe(tmp_path: Path, name: str, args: list[str],
                                   expected: str) -> None:
    media = ffmpeg(tmp_path / name, *args)
    assert media_mime_type(probe(media)) == expected


def test_audio_results_carry_the_probed_type(audio_converter: AudioConverter,
                                             tmp_path: Path) -> None:
    mp3 = ffmpeg(tmp_path / "quiet.mp3", *SILENCE)
    result = audio_converter.convert(mp3, {}, octet_job(mp3, "audio"), no_progress)
    assert result.metadata["mime_type"] == "audio/mpeg"
    wav_named_mp3 = ffmpeg(tmp_path / "wave.mp3", *SILENCE, "-f", "wav")  # the name lies
    result = audio_converter.convert(wav_named_mp3, {}, octet_job(wav_named_mp3, "audio"),
                                     no_progress)
    assert result.metadata["mime_type"] == "audio/wav"
    assert result.markdown.startswith("# Audio Transcription: wave.mp3\n")


def test_video_results_carry_the_probed_type(audio_converter: AudioConverter,
                                             tmp_path: Path) -> None:
    video = VideoConverter()
    video.audio = audio_converter
    for name, expected in (("clip.mp4", "video/mp4"), ("clip.mov", "video/quicktime")):
        clip = silent_video(tmp_path / name, seconds=1.0)
        result = video.convert(clip, {}, octet_job(clip, "video"), no_progress)
        assert result.metadata["mime_type"] == expected, name


@pytest.fixture(scope="module")
def documents() -> DocumentConverter:
    return DocumentConverter()


def test_document_types_from_the_content(documents: DocumentConverter, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "report.pdf", ["The committee approved the new rain tank."])
    docx = sales_docx(tmp_path / "sales.docx")
    upload = sales_docx(tmp_path / "upload.bin")  # an Office file under a meaningless name
    note = tmp_path / "notes.md"
    note.write_text("# Plan\n\nPlant beans in May.\n", encoding="utf-8")
    for source, expected in ((pdf, "application/pdf"), (docx, DOCX), (upload, DOCX),
                             (note, "text/markdown")):
        result = documents.convert(source, {}, octet_job(source, "document"), no_progress)
        assert result.metadata["mime_type"] == expected, source.name
        assert result.metadata["title"], source.name


def test_image_types_from_pillow(tmp_path: Path) -> None:
    png = text_image(["Seed order 42"], tmp_path / "order.png")
    result = ImageConverter().convert(png, {}, octet_job(png, "image"), no_progress)
    assert result.metadata["mime_type"] == "image/png"
    jpeg = tmp_path / "photo.png"  # a JPEG under a PNG name
    from PIL import Image

    with Image.open(png) as image:
        image.convert("RGB").save(jpeg, format="JPEG")
    result = ImageConverter().convert(jpeg, {}, octet_job(jpeg, "image"), no_progress)
    assert result.metadata["mime_type"] == "image/jpeg"


def test_magic_bytes_then_extension_then_a_specific_header(tmp_path: Path) -> None:
    png = text_image(["x"], tmp_path / "x.png").rename(tmp_path / "blob")
    assert detect_mime_type(png, "blob", OCTET) == "image/png"
    page = tmp_path / "download"
    page.write_bytes(b"\xef\xbb\xbf\n<!DOCTYPE html><html><body><p>Hi</p></body></html>")
    assert detect_mime_type(page, "download", OCTET) == "text/html"
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)))
    assert detect_mime_type(binary, "drawing.dwg", OCTET) == OCTET
    assert detect_mime_type(binary, "drawing.dwg", "image/vnd.dwg; x=1") == "image/vnd.dwg"
    assert detect_mime_type(binary, "talk.mp3", OCTET) == "audio/mpeg"  # the name, at last


@pytest.fixture
def pages(tmp_path: Path, serve_dir: Callable[[Path], str]) -> str:
    site = tmp_path / "site"
    site.mkdir()
    (site / "article.html").write_text(
        article_page("Growing beans", "Jane Gardener", "2024-05-01", ARTICLE_BLOCKS),
        encoding="utf-8")
    paragraphs = "".join(f"<p>{content}</p>" for kind, content in ARTICLE_BLOCKS if kind == "p")
    (site / "untitled.html").write_text(f"<html><body><article>{paragraphs}</article>"
                                        "</body></html>", encoding="utf-8")
    return serve_dir(site)


def test_web_result_is_named_by_its_title(pages: str, tmp_path: Path) -> None:
    url = f"{pages}/article.html"
    source = url_file(tmp_path, url)
    result = WebConverter().convert(source, ALLOW, octet_job(source, "web"), no_progress)
    meta = result.metadata
    assert meta["file_name"] == meta["title"] == "Growing beans"
    assert meta["source_url"] == url and meta["mime_type"] == "text/html"
    assert result.markdown.startswith("# Growing beans\n")
    assert "source.url" not in result.markdown


def test_web_page_without_a_title_is_named_by_its_address(pages: str, tmp_path: Path) -> None:
    url = f"{pages}/untitled.html"
    source = url_file(tmp_path, url)
    result = WebConverter().convert(source, ALLOW, octet_job(source, "web"), no_progress)
    expected = url.split("://", 1)[1]
    assert result.metadata["file_name"] == result.metadata["title"] == expected
    assert result.markdown.startswith(f"# {expected}\n")


def test_title_or_url() -> None:
    assert title_or_url("  Growing\n beans ", "https://example.org/x") == "Growing beans"
    assert title_or_url(None, "https://example.org/garden/beans/") == "example.org/garden/beans"
    assert title_or_url("", "https://example.org") == "example.org"


def test_youtube_result_is_named_by_the_video_title(audio_converter: AudioConverter,
                                                    tmp_path: Path,
                                                    serve_dir: Callable[[Path], str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    ffmpeg(site / "audio.m4a", *SILENCE)
    base = serve_dir(site)
    info = {"id": "abc123XYZ_0", "title": "Planting beans in spring", "duration": 2,
            "webpage_url": "https://www.youtube.com/watch?v=abc123XYZ_0",
            "extractor": "youtube", "extractor_key": "Youtube",
            "formats": [{"format_id": "140", "url": f"{base}/audio.m4a", "ext": "m4a",
                         "acodec": "aac", "vcodec": "none", "protocol": "http"}]}
    youtube = YoutubeConverter()
    youtube.audio = audio_converter
    workdir = tmp_path / "work"
    workdir.mkdir()
    source = url_file(tmp_path, info["webpage_url"])
    result = youtube.convert_info(info, workdir, ALLOW, octet_job(source, "youtube"),
                                  no_progress)
    meta = result.metadata
    assert meta["file_name"] == meta["title"] == "Planting beans in spring"
    assert meta["source_url"] == info["webpage_url"] and meta["mime_type"] == "audio/mp4"
    assert result.markdown.startswith("# Video Analysis: Planting beans in spring\n")
