"""ffmpeg and PyAV helpers shared by the audio, video and youtube converters.

PyAV probes in-process (milliseconds, no extra process); ffmpeg does the extraction because it
streams any input to a 16 kHz mono WAV without ever holding the medium in memory.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import Availability, ConversionError

WHISPER_SAMPLE_RATE = 16000


def tool_availability(*tools: str) -> Availability:
    """Whether the named command-line tools are on PATH; names the missing ones."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return Availability(False, f"{', '.join(missing)} not found on PATH (install ffmpeg)")
    return Availability(True)


@dataclass
class MediaInfo:
    """What a container says about itself; enough for metadata and for deciding what to do."""

    duration: float | None = None
    format_name: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None


def probe(path: Path) -> MediaInfo:
    """Reads container and stream headers with PyAV; an unreadable file is a ConversionError."""
    import av

    try:
        with av.open(str(path)) as container:
            return _media_info(container)
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        reason = _first_line(exc)
        raise ConversionError(f"{path.name} is not a readable media file ({reason})") from None


def _media_info(container: Any) -> MediaInfo:
    import av

    info = MediaInfo(format_name=container.format.name)
    if container.duration is not None:
        info.duration = container.duration / 1_000_000  # av.time_base is microseconds
    info.tags = {str(k).lower(): str(v) for k, v in (container.metadata or {}).items()}
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:  # cover art, not video
            continue
        info.video_codec = stream.codec_context.name
        info.width, info.height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        info.frame_rate = round(float(rate), 3) if rate else None
        break
    for stream in container.streams.audio:
        info.audio_codec = stream.codec_context.name
        info.sample_rate = stream.codec_context.sample_rate
        info.channels = stream.codec_context.channels
        break
    if info.duration is None:
        info.duration = _longest_stream_duration(container)
    return info


def _longest_stream_duration(container: Any) -> float | None:
    durations = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base
    ]
    return max(durations) if durations else None


def extract_wav(source: Path, dest: Path, timeout: float | None = None, threads: int = 1) -> Path:
    """Decodes the first audio track to 16 kHz mono 16-bit WAV, streaming (ffmpeg never buffers
    the whole input). Raises ConversionError with ffmpeg's own reason on failure."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConversionError("ffmpeg is not installed on this worker")
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-threads", str(threads), "-i", str(source),
        "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(WHISPER_SAMPLE_RATE),
        "-c:a", "pcm_s16le", "-f", "wav", str(dest),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"audio extraction from {source.name} timed out") from None
    if done.returncode != 0:
        reason = _last_line(done.stderr).replace(str(source), source.name)
        raise ConversionError(f"ffmpeg could not extract audio from {source.name}: {reason}")
    return dest


def keyframe_times(path: Path, limit: int) -> list[float]:
    """Seconds of the first `limit` video keyframes, read from packets without decoding."""
    import av

    times: list[float] = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            return times
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.pts is not None and packet.time_base:
                times.append(round(float(packet.pts * packet.time_base), 3))
                if len(times) >= limit:
                    break
    return times


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return text[0] if text else type(exc).__name__
