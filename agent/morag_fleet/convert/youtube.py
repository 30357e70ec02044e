"""YouTube (and any media URL yt-dlp understands) -> transcript with chapters as topic headers.

The job's source file holds the URL. yt-dlp downloads the best audio into the job's temp dir
(quietly: no progress bars in the journal), then the audio path of `AudioConverter` transcribes
it. Every host yt-dlp would fetch media from is checked like any other job URL.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from morag_fleet.convert.audio import (
    TranscribingConverter,
    transcript_body,
    transcript_metadata,
    video_markdown,
)
from morag_fleet.convert.base import ConversionError, ConversionResult, ProgressCallback
from morag_fleet.convert.httpfetch import check_url
from morag_fleet.convert.markdown import (
    clean_metadata,
    format_duration,
    title_or_url,
    url_metadata,
)
from morag_fleet.convert.media import probe
from morag_fleet.convert.mimetype import media_mime_type
from morag_fleet.convert.web import read_url
from morag_fleet.convert.whisper import Transcript
from morag_fleet.log import get_logger

log = get_logger(__name__)

DOWNLOAD_SHARE = 0.3  # progress fraction given to the download; the rest is transcription
MAX_CHAPTERS_IN_METADATA = 100
DEFAULT_MAX_FILESIZE = 2 * 1024**3


class _YtdlpLog:
    """Routes yt-dlp's messages to structlog at debug level (warnings and errors kept)."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp", message=msg[:500])

    def info(self, msg: str) -> None:
        log.debug("yt-dlp", message=msg[:500])

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp", message=msg[:500])

    def error(self, msg: str) -> None:
        log.error("yt-dlp", message=msg[:500])


def ytdlp_options(workdir: Path, options: Mapping[str, Any],
                  progress: ProgressCallback) -> dict[str, Any]:
    def hook(status: Mapping[str, Any]) -> None:
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        if status.get("status") == "downloading" and total:
            progress(DOWNLOAD_SHARE * status.get("downloaded_bytes", 0) / total, "downloading")

    return {
        "format": str(options.get("format", "bestaudio/best")),
        "outtmpl": {"default": "media.%(ext)s"},
        "paths": {"home": str(workdir), "temp": str(workdir)},
        "quiet": True,
        "noprogress": True,
        "logger": _YtdlpLog(),
        "noplaylist": True,
        "cachedir": False,
        "writesubtitles": False,
        "writethumbnail": False,
        "writeinfojson": False,
        "overwrites": True,
        "socket_timeout": float(options.get("socket_timeout", 30)),
        "max_filesize": int(options.get("max_filesize", DEFAULT_MAX_FILESIZE)),
        "retries": int(options.get("retries", 3)),
        "progress_hooks": [hook],
    }


class YoutubeConverter(TranscribingConverter):
    """The job's file holds a URL: yt-dlp reads what is behind it and fetches the media (each
    host checked like the URL), and the converter's AudioConverter transcribes it."""

    name = "yt-dlp+faster-whisper"
    packages = ("youtube", "yt_dlp")

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: ProgressCallback) -> ConversionResult:
        url = read_url(source)
        check_url(url, bool(options.get("allow_private", False)))
        progress(None, "reading media information")
        with tempfile.TemporaryDirectory(prefix="ytdl-", dir=source.parent) as tmp:
            info = self._extract(url, Path(tmp), options, progress)
            return self.convert_info(info, Path(tmp), options, job_info, progress)

    def _extract(self, url: str, workdir: Path, options: Mapping[str, Any],
                 progress: ProgressCallback) -> dict[str, Any]:
        import yt_dlp

        with yt_dlp.YoutubeDL(ytdlp_options(workdir, options, progress)) as ydl:
            try:
                info = ydl.extract_info(url, download=False)
            except yt_dlp.utils.DownloadError as exc:
                raise ConversionError(f"yt-dlp cannot read {url[:120]}: {_reason(exc)}") from None
        if not info:
            raise ConversionError(f"yt-dlp found no media at {url[:120]}")
        if info.get("_type") == "playlist":
            raise ConversionError("the URL is a playlist; submit one video per job")
        return info

    def convert_info(self, info: Mapping[str, Any], workdir: Path, options: Mapping[str, Any],
                     job_info: Mapping[str, Any], progress: ProgressCallback) -> ConversionResult:
        """Downloads the media an extracted info dict describes, then transcribes it."""
        check_media_hosts(info, bool(options.get("allow_private", False)))
        media = self._download(dict(info), workdir, options, progress)
        probed = probe(media)
        duration = info.get("duration") or probed.duration
        chapters = chapter_list(info)

        def transcript_progress(fraction: float | None, message: str | None) -> None:
            scaled = None if fraction is None else DOWNLOAD_SHARE + (1 - DOWNLOAD_SHARE) * fraction
            progress(scaled, message)

        transcript = self.audio.transcribe(media, options, transcript_progress)
        return youtube_result(info, duration, chapters, transcript, job_info,
                              media_mime_type(probed))

    def _download(self, info: dict[str, Any], workdir: Path, options: Mapping[str, Any],
                  progress: ProgressCallback) -> Path:
        import yt_dlp

        with yt_dlp.YoutubeDL(ytdlp_options(workdir, options, progress)) as ydl:
            try:
                done = ydl.process_ie_result(info, download=True)
            except yt_dlp.utils.DownloadError as exc:
                raise ConversionError(f"download failed: {_reason(exc)}") from None
        paths = [d.get("filepath") for d in (done or {}).get("requested_downloads") or []]
        files = [Path(p) for p in paths if p and Path(p).is_file()]
        if not files:
            raise ConversionError("yt-dlp finished without a media file (too large or no format)")
        return files[0]


def check_media_hosts(info: Mapping[str, Any], allow_private: bool) -> None:
    """Every distinct host the formats point at must pass the same address check as the URL."""
    urls = [f.get("url") for f in info.get("formats") or []] + [info.get("url")]
    hosts: dict[str, str] = {}
    for url in urls:
        if url and urlsplit(url).hostname:
            hosts.setdefault(urlsplit(url).netloc, url)
    for url in hosts.values():
        check_url(url, allow_private)


def chapter_list(info: Mapping[str, Any]) -> list[tuple[float, str]]:
    chapters = []
    for chapter in info.get("chapters") or []:
        if chapter.get("start_time") is not None:
            chapters.append((float(chapter["start_time"]), str(chapter.get("title") or "Chapter")))
    return sorted(chapters)


def youtube_result(info: Mapping[str, Any], duration: float | None,
                   chapters: list[tuple[float, str]], transcript: Transcript,
                   job_info: Mapping[str, Any], mime_type: str | None = None
                   ) -> ConversionResult:
    """The video's title names the result (the job's file only holds the URL); `mime_type` is
    that of the media downloaded."""
    url = str(info.get("webpage_url") or info.get("original_url") or info.get("url") or "")
    title = title_or_url(info.get("title") or info.get("id"), url) or "Untitled"
    facts = {"Title": title, "Uploader": info.get("uploader"),
             "Duration": format_duration(duration) if duration else None, "URL": url,
             "Chapters": len(chapters) or None, "Language": transcript.language}
    markdown = video_markdown(title, facts, transcript_body(transcript, chapters))
    metadata = url_metadata(job_info, "youtube", url, title, mime_type)
    metadata |= transcript_metadata(transcript) | {
        "uploader": info.get("uploader"), "url": url,
        "duration": round(float(duration), 3) if duration else transcript.duration,
        "upload_date": info.get("upload_date"), "video_id": info.get("id"),
        "chapters": [{"title": t, "start": s} for s, t in chapters[:MAX_CHAPTERS_IN_METADATA]],
        "num_topics": len(chapters) or None, "has_topic_info": bool(chapters),
    }
    return ConversionResult(markdown, clean_metadata(metadata))


def _reason(exc: Exception) -> str:
    text = str(exc).replace("ERROR: ", "").strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
