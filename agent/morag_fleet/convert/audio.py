"""Audio files -> the audio transcription layout: ffmpeg (to 16 kHz WAV), then faster-whisper."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import (
    Availability,
    ConversionError,
    ConversionResult,
    ProgressCallback,
    packages_availability,
)
from morag_fleet.convert.markdown import (
    bullets,
    clean_metadata,
    file_metadata,
    format_duration,
    segment_lines,
    topic_header,
)
from morag_fleet.convert.media import extract_wav, probe, tool_availability
from morag_fleet.convert.mimetype import media_mime_type
from morag_fleet.convert.speechcheck import check_transcript
from morag_fleet.convert.whisper import Transcriber, Transcript, WhisperOptions, model_availability

HOUR = 3600.0


class AudioConverter:
    """One instance per slot: its Transcriber keeps the whisper model loaded between jobs."""

    name = "faster-whisper"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.transcriber = Transcriber()
        self._check_options = dict(options or {})

    def available(self) -> Availability:
        tools = tool_availability("ffmpeg")
        if not tools.ok:
            return tools
        return model_availability(self._check_options)

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        info = probe(source)
        if not info.has_audio:
            raise ConversionError(f"{source.name} has no audio track")
        transcript = self.transcribe(source, options, progress)
        file_name, metadata = file_metadata(source, job_info, "audio", info.tags.get("title"),
                                            media_mime_type(info))
        markdown = audio_markdown(file_name, transcript)
        metadata |= transcript_metadata(transcript)
        return ConversionResult(markdown, clean_metadata(metadata))

    def transcribe(
        self, source: Path, options: Mapping[str, Any], progress: ProgressCallback
    ) -> Transcript:
        """Extract -> transcribe -> check against the audio (speechcheck: an empty transcript
        of real speech fails the job instead of being published); the WAV lives next to the
        source in the job's temp dir. Audio, video and youtube jobs all come through here."""
        opts = WhisperOptions.from_options(options)
        with tempfile.TemporaryDirectory(prefix="wav-", dir=source.parent) as tmp:
            progress(None, "extracting audio")
            wav = extract_wav(source, Path(tmp) / "audio.wav", threads=opts.cpu_threads)
            transcript = self.transcriber.transcribe_wav(wav, opts, progress)
            check = check_transcript(wav, transcript, opts, source.name)
            if check is not None and check.silent:
                transcript.segments.clear()  # real silence reads "_No speech detected._"
            return transcript


class TranscribingConverter:
    """Base of the converters whose media an AudioConverter of their own transcribes (video,
    youtube): the whisper model stays loaded for the slot's life, and a host can run them when
    their own packages and then the audio path are available."""

    packages: tuple[str, ...] = ()  # (pip extra, module, ...) the converter itself needs

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.audio = AudioConverter(options)

    def available(self) -> Availability:
        extra, *modules = self.packages
        own = packages_availability(extra, *modules)
        return own if not own.ok else self.audio.available()


def transcript_metadata(transcript: Transcript) -> dict[str, Any]:
    return {
        "duration": round(transcript.duration, 3),
        "language": transcript.language,
        "segment_count": len(transcript.segments),
        "model": transcript.model,
    }


def transcript_lines(
    transcript: Transcript, chapters: list[tuple[float, str]] | None = None
) -> list[str]:
    """Segment lines, with a topic header before the first segment of each chapter."""
    long_media = transcript.duration >= HOUR
    lines: list[str] = []
    pending = sorted(chapters or [])
    for seg in transcript.segments:
        while pending and pending[0][0] <= seg.start + 0.5:
            start, title = pending.pop(0)
            header = [topic_header(title, start), ""]
            lines += ["", *header] if lines else header
        lines += segment_lines([(seg.start, seg.text)], long_media)
    return lines


def transcript_body(
    transcript: Transcript, chapters: list[tuple[float, str]] | None = None
) -> str:
    """The transcript's lines, or the note that there was no speech."""
    return "\n".join(transcript_lines(transcript, chapters)) or "_No speech detected._"


def video_markdown(title: str, facts: Mapping[str, Any], body: str) -> str:
    """The video layout, shared by video files and media URLs."""
    return (f"# Video Analysis: {title}\n\n## Video Information\n\n{bullets(facts)}\n\n"
            f"## Transcript\n\n{body}\n")


def audio_markdown(
    file_name: str, transcript: Transcript, chapters: list[tuple[float, str]] | None = None
) -> str:
    info = {
        "Duration": format_duration(transcript.duration),
        "Language": transcript.language,
        "Segments": len(transcript.segments),
        "Model": transcript.model,
    }
    body = transcript_body(transcript, chapters)
    return (
        f"# Audio Transcription: {file_name}\n\n## Metadata\n\n{bullets(info)}\n\n"
        f"## Detailed Transcript\n\n{body}\n"
    )
