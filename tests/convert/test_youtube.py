"""YouTube: a YouTube-shaped info dict whose media URL is on loopback, and a direct media URL."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.youtube import YoutubeConverter, check_media_hosts
from morag_fleet.samples.generate import Speech, encode_audio
from tests.convert.conftest import Progress, job_info_for, url_file
from tests.support.media import wer

ALLOW = {"allow_private": True}


@pytest.fixture(scope="module")
def youtube(audio_converter: AudioConverter) -> YoutubeConverter:
    converter = YoutubeConverter()
    converter.audio = audio_converter
    return converter


@pytest.fixture
def media_site(speech: Speech, tmp_path: Path, serve_dir: Callable[[Path], str]) -> str:
    site = tmp_path / "site"
    site.mkdir()
    encode_audio(speech.path, site / "audio.m4a")
    encode_audio(speech.path, site / "talk.mp3")
    return serve_dir(site)


def youtube_info(base: str, speech: Speech) -> dict:
    """What yt-dlp's YouTube extractor returns, trimmed to what matters, media on loopback."""
    chapter_two = round(speech.starts[2] - 0.4, 1)
    return {
        "id": "dQw4w9WgXcQ", "title": "Garden committee meeting", "uploader": "Garden Club",
        "duration": round(speech.duration), "upload_date": "20240501",
        "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "extractor": "youtube", "extractor_key": "Youtube",
        "chapters": [{"start_time": 0.0, "end_time": chapter_two, "title": "Planning"},
                     {"start_time": chapter_two, "end_time": speech.duration,
                      "title": "Building the tank"}],
        "formats": [{"format_id": "140", "url": f"{base}/audio.m4a", "ext": "m4a",
                     "acodec": "aac", "vcodec": "none", "protocol": "http", "abr": 128}],
    }


def test_youtube_info_dict_download(youtube: YoutubeConverter, media_site: str, speech: Speech,
                                    tmp_path: Path, progress: Progress) -> None:
    info = youtube_info(media_site, speech)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = youtube.convert_info(info, workdir, ALLOW, {"file_name": "job.url"}, progress)
    md = result.markdown
    assert md.startswith("# Video Analysis: Garden committee meeting\n")
    assert "# Planning [0]" in md
    chapter_two = int(info["chapters"][1]["start_time"])
    assert f"# Building the tank [{chapter_two}]" in md
    planning, building = md.split("# Planning [0]")[1].split("# Building the tank")
    assert len(re.findall(r"^\[\d\d:\d\d\] ", planning, re.MULTILINE)) == 2
    assert len(re.findall(r"^\[\d\d:\d\d\] ", building, re.MULTILINE)) == 2
    assert wer(" ".join(speech.sentences), planning + building.split("]", 1)[1]) < 0.3
    meta = result.metadata
    assert meta["title"] == "Garden committee meeting" and meta["uploader"] == "Garden Club"
    assert meta["duration"] == info["duration"] and meta["num_topics"] == 2
    assert meta["has_topic_info"] is True and meta["content_type"] == "youtube"
    assert [c["title"] for c in meta["chapters"]] == ["Planning", "Building the tank"]
    assert meta["url"] == info["webpage_url"]
    assert progress.fractions == sorted(progress.fractions) and progress.fractions[-1] > 0.9


def test_direct_media_url(youtube: YoutubeConverter, media_site: str, speech: Speech,
                          tmp_path: Path) -> None:
    source = url_file(tmp_path, f"{media_site}/talk.mp3")
    result = youtube.convert(source, ALLOW, job_info_for(source, "youtube"), lambda f, m: None)
    assert abs(result.metadata["duration"] - speech.duration) < 0.5  # probed, not told
    assert result.metadata["has_topic_info"] is False
    assert wer(" ".join(speech.sentences), result.markdown.split("## Transcript", 1)[1]) < 0.3
    assert not any(p.name.startswith("ytdl-") for p in tmp_path.iterdir())  # cleaned up


def test_loopback_refused_by_default(youtube: YoutubeConverter, media_site: str,
                                     tmp_path: Path) -> None:
    source = url_file(tmp_path, f"{media_site}/talk.mp3")
    with pytest.raises(ConversionError, match=r"non-public address"):
        youtube.convert(source, {}, job_info_for(source, "youtube"), lambda f, m: None)


def test_private_format_hosts_refused(speech: Speech) -> None:
    info = youtube_info("http://10.9.8.7", speech)
    with pytest.raises(ConversionError, match=r"10.9.8.7"):
        check_media_hosts(info, allow_private=False)


def test_missing_media_is_a_clear_error(youtube: YoutubeConverter, media_site: str,
                                        tmp_path: Path) -> None:
    source = url_file(tmp_path, f"{media_site}/nothing-here.mp3")
    with pytest.raises(ConversionError, match=r"404"):
        youtube.convert(source, ALLOW, job_info_for(source, "youtube"), lambda f, m: None)
