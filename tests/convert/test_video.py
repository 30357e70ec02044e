"""Video: generated MP4s (ffmpeg testsrc + espeak speech, and one without audio)."""

from __future__ import annotations

from pathlib import Path

import pytest

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.video import NO_AUDIO_NOTE, VideoConverter
from morag_fleet.samples.generate import Speech, silent_video, video_with_audio
from tests.convert.conftest import Progress, job_info_for
from tests.support.media import wer


@pytest.fixture(scope="module")
def video_converter(audio_converter: AudioConverter) -> VideoConverter:
    converter = VideoConverter()
    converter.audio = audio_converter  # share the session's loaded model
    return converter


@pytest.fixture(scope="module")
def speech_mp4(speech_mp3: Path, media_dir: Path) -> Path:
    return video_with_audio(speech_mp3, media_dir / "talk.mp4", size="320x240", rate=25)


def test_video_with_speech(video_converter: VideoConverter, speech_mp4: Path, speech: Speech,
                           progress: Progress) -> None:
    result = video_converter.convert(speech_mp4, {"keyframes": True},
                                     job_info_for(speech_mp4, "video", "video/mp4"), progress)
    meta = result.metadata
    assert meta["content_type"] == "video" and meta["file_extension"] == "mp4"
    assert meta["video_codec"] == "h264" and meta["audio_codec"] == "aac"
    assert (meta["width"], meta["height"], meta["frame_rate"]) == (320, 240, 25.0)
    assert abs(meta["duration"] - speech.duration) < 0.6
    assert meta["has_audio"] is True and meta["language"] == "en"
    assert meta["keyframe_times"][0] == 0.0 and meta["keyframe_times"] == sorted(
        meta["keyframe_times"])
    assert "source_path" not in meta
    md = result.markdown
    assert md.startswith("# Video Analysis: talk.mp4\n\n## Video Information\n")
    assert "- **Resolution**: 320x240" in md and "- **Video Codec**: h264" in md
    transcript = md.split("## Transcript\n\n", 1)[1]
    assert all(line.startswith("[00:") for line in transcript.strip().splitlines())
    assert wer(" ".join(speech.sentences), transcript) < 0.3
    assert progress.fractions and progress.fractions[-1] == 1.0


def test_video_without_audio_is_a_successful_result(video_converter: VideoConverter,
                                                    tmp_path: Path) -> None:
    mp4 = silent_video(tmp_path / "silent.mp4", seconds=3.0, size="160x120")
    result = video_converter.convert(mp4, {}, job_info_for(mp4, "video"), lambda f, m: None)
    assert result.metadata["has_audio"] is False
    assert result.metadata["note"] == NO_AUDIO_NOTE
    assert abs(result.metadata["duration"] - 3.0) < 0.2
    assert "audio_codec" not in result.metadata and "segment_count" not in result.metadata
    assert NO_AUDIO_NOTE in result.markdown and "- **Audio Codec**: none" in result.markdown


def test_corrupt_video_is_a_conversion_error(video_converter: VideoConverter,
                                             tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 4000)
    with pytest.raises(ConversionError, match=r"broken\.mp4"):
        video_converter.convert(broken, {}, job_info_for(broken, "video"), lambda f, m: None)
