"""Video files -> MoRAG's video layout: PyAV metadata, ffmpeg audio extraction, whisper transcript.

A video without an audio track is a valid video: it gets its metadata and a note, not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from morag_fleet.convert.audio import (
    TranscribingConverter,
    transcript_body,
    transcript_metadata,
    video_markdown,
)
from morag_fleet.convert.base import ConversionResult, ProgressCallback
from morag_fleet.convert.markdown import clean_metadata, file_metadata, format_duration
from morag_fleet.convert.media import MediaInfo, keyframe_times, probe
from morag_fleet.convert.mimetype import media_mime_type
from morag_fleet.convert.whisper import Transcript

DEFAULT_MAX_KEYFRAMES = 50
NO_AUDIO_NOTE = "The video has no audio track; there is no transcript."


class VideoConverter(TranscribingConverter):
    """PyAV reads the container; the audio track goes through the converter's AudioConverter."""

    name = "ffmpeg+faster-whisper"
    packages = ("video", "av")

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        info = probe(source)
        transcript = self.audio.transcribe(source, options, progress) if info.has_audio else None
        file_name, metadata = file_metadata(source, job_info, "video", info.tags.get("title"),
                                            media_mime_type(info))
        metadata |= video_metadata(info)
        if transcript is not None:
            metadata |= transcript_metadata(transcript)
            metadata["duration"] = info.duration or transcript.duration
        else:
            metadata["note"] = NO_AUDIO_NOTE
        if options.get("keyframes"):
            limit = int(options.get("max_keyframes", DEFAULT_MAX_KEYFRAMES))
            metadata["keyframe_times"] = keyframe_times(source, limit)
        progress(1.0, "done")
        return ConversionResult(video_file_markdown(file_name, info, transcript),
                                clean_metadata(metadata))


def video_metadata(info: MediaInfo) -> dict[str, Any]:
    return {
        "duration": round(info.duration, 3) if info.duration else None,
        "format": info.format_name,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
        "width": info.width,
        "height": info.height,
        "frame_rate": info.frame_rate,
        "has_audio": info.has_audio,
    }


def video_file_markdown(file_name: str, info: MediaInfo, transcript: Transcript | None) -> str:
    facts = {
        "Duration": format_duration(info.duration) if info.duration else None,
        "Resolution": f"{info.width}x{info.height}" if info.width else None,
        "Frame Rate": info.frame_rate,
        "Video Codec": info.video_codec,
        "Audio Codec": info.audio_codec or "none",
        "Language": transcript.language if transcript else None,
    }
    body = f"_{NO_AUDIO_NOTE}_" if transcript is None else transcript_body(transcript)
    return video_markdown(file_name, facts, body)
