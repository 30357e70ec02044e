"""The MIME type a result reports, taken from the content rather than from the download.

MoRAG serves every source file as `application/octet-stream`, so the download's `Content-Type`
says nothing. The converter's own parser knows best (PyAV's probe for media, Pillow for images);
for everything else the first bytes decide, then the file name's extension, and the server's
header only when it names something specific.

Extensions map to types through a private `mimetypes` registry: Python's built-in table plus the
few types it lacks, so the answer does not depend on the host's `/etc/mime.types`.
"""

from __future__ import annotations

import mimetypes
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from morag_fleet.convert.media import MediaInfo

OCTET_STREAM = "application/octet-stream"
UNSPECIFIC_TYPES = frozenset({
    "", OCTET_STREAM, "binary/octet-stream", "application/unknown", "application/x-download",
    "application/force-download", "application/download",
})
HEAD_BYTES = 4096

# Types Python's built-in table lacks or names by an outdated alias.
EXTRA_TYPES = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".ogv": "video/ogg", ".m4a": "audio/mp4", ".m4v": "video/mp4", ".3gp": "video/3gpp",
    ".3g2": "video/3gpp2", ".mkv": "video/x-matroska", ".mka": "audio/x-matroska",
    ".weba": "audio/webm", ".ts": "video/mp2t", ".wma": "audio/x-ms-wma",
    ".wmv": "video/x-ms-wmv", ".amr": "audio/amr", ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".odt": "application/vnd.oasis.opendocument.text", ".epub": "application/epub+zip",
}

# PyAV demuxer family (first name of `container.format.name`) -> extension, for the families
# whose type does not depend on the brand or the streams.
DEMUXER_EXTENSIONS = {
    "mp3": ".mp3", "wav": ".wav", "flac": ".flac", "aac": ".aac", "avi": ".avi",
    "mpegts": ".ts", "mpeg": ".mpg", "aiff": ".aiff", "amr": ".amr",
}
WEBM_CODECS = frozenset({"vp8", "vp9", "av1", "opus", "vorbis", "libvpx", "libvpx-vp9",
                         "libdav1d", "libaom-av1", "libopus", "libvorbis"})

MAGIC = (  # (offset, signature, type): unambiguous signatures only
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (8, b"WEBP", "image/webp"),
)
HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")
OOXML_MAIN = re.compile(rb'ContentType="(application/[^"]+?)\.main(?:\+xml)?"')


def _registry() -> mimetypes.MimeTypes:
    """Python's built-in table (no system files) with the additions above."""
    registry = mimetypes.MimeTypes()
    for extension, mime in EXTRA_TYPES.items():
        registry.add_type(mime, extension, strict=False)
    return registry


_REGISTRY = _registry()


def is_specific(mime: str | None) -> bool:
    """Whether a declared type says something (servers send octet-stream for anything)."""
    return bool(mime) and normalise(mime) not in UNSPECIFIC_TYPES


def is_textual(mime: str) -> bool:
    """Types whose content is text, so that sniffed text may take the name's finer type."""
    return mime.startswith("text/") or mime.endswith(("/json", "/xml", "+xml", "+json"))


def normalise(mime: str) -> str:
    """`Text/HTML; charset=utf-8` -> `text/html`."""
    return mime.split(";", 1)[0].strip().lower()


def from_extension(name: str) -> str | None:
    """The type the file name's extension stands for, if it says more than octet-stream."""
    mime = type_for_suffix(Path(name).suffix)
    return mime if is_specific(mime) else None


def type_for_suffix(suffix: str) -> str | None:
    """`.mp3` -> `audio/mpeg`; our additions first, then Python's built-in table."""
    suffix = suffix.lower()
    if not suffix:
        return None
    return _REGISTRY.types_map[False].get(suffix) or _REGISTRY.types_map[True].get(suffix)


def detect_mime_type(path: Path, file_name: str | None = None, declared: str | None = None,
                     parsed: str | None = None) -> str:
    """The best type the result can claim: the converter's parser (`parsed`), the content's
    first bytes, the original name's extension, the server's header when specific, and
    octet-stream when nothing is known."""
    if is_specific(parsed):
        return normalise(str(parsed))
    by_name = from_extension(file_name or path.name) or from_extension(path.name)
    sniffed = sniff_mime_type(path)
    if sniffed == "text/plain" and by_name and is_textual(by_name):
        return by_name  # markdown, CSV, JSON: the bytes say text, the name says which
    if sniffed:
        return sniffed
    if by_name:
        return by_name
    return normalise(str(declared)) if is_specific(declared) else OCTET_STREAM


def sniff_mime_type(path: Path) -> str | None:
    """The type the first bytes prove (PDF, images, Office/ODF zips, HTML, text), else None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return None
    if b"%PDF-" in head[:1024]:
        return "application/pdf"
    for offset, signature, mime in MAGIC:
        if head[offset:offset + len(signature)] == signature:
            return mime
    if head.startswith(b"PK\x03\x04"):
        return zip_mime_type(path)
    return text_mime_type(head)


def zip_mime_type(path: Path) -> str:
    """OOXML by its main part's content type, ODF/EPUB by their `mimetype` entry, else zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "[Content_Types].xml" in names:
                found = OOXML_MAIN.search(archive.read("[Content_Types].xml"))
                if found:
                    return ooxml_package_type(found.group(1).decode("ascii", "replace"))
            if "mimetype" in names:
                declared = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if re.fullmatch(r"application/[\w.+-]+", declared):
                    return declared
    except (zipfile.BadZipFile, OSError, KeyError):
        pass
    return "application/zip"


def ooxml_package_type(main_part: str) -> str:
    """The package's type from its main part's (minus `.main+xml`): Microsoft's macro-enabled
    and binary variants carry a `.12` suffix that the part's type leaves out."""
    return f"{main_part}.12" if main_part.startswith("application/vnd.ms-") else main_part


def text_mime_type(head: bytes) -> str | None:
    """`text/html` for markup that opens like a page, `text/plain` for other readable text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "text/plain"  # UTF-16 with a byte-order mark
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the read boundary
            return None
        text = head[:exc.start].decode("utf-8")
    opening = text.lstrip("\ufeff \t\r\n").lower().encode()
    if opening.startswith(HTML_STARTS) or (opening.startswith(b"<?xml") and b"<html" in opening):
        return "text/html"
    if any(ord(c) < 32 and c not in "\t\n\r\f\v\x1b" for c in text):
        return None
    return "text/plain"


def media_mime_type(info: MediaInfo) -> str | None:
    """The type of a probed container: PyAV's demuxer, refined by the brand (MP4 family) or
    the streams (audio-only vs video, WebM vs Matroska, Ogg audio vs video)."""
    extension = media_extension(info)
    return type_for_suffix(extension) if extension else None


def media_extension(info: MediaInfo) -> str | None:
    family = (info.format_name or "").split(",")[0]
    if family == "mov":
        return _iso_extension(info)
    if family == "matroska":
        return _matroska_extension(info)
    if family == "ogg":
        return ".ogv" if info.has_video else ".ogg"
    if family == "asf":
        return ".wmv" if info.has_video else ".wma"
    return DEMUXER_EXTENSIONS.get(family)


def _iso_extension(info: MediaInfo) -> str:
    """QuickTime, 3GPP and M4A files share one demuxer; the `ftyp` major brand tells them apart."""
    brand = info.tags.get("major_brand", "").strip().lower()
    if brand == "qt":
        return ".mov"
    if brand.startswith("3g2"):
        return ".3g2"
    if brand.startswith("3g"):
        return ".3gp"
    if brand in ("m4a", "m4b", "f4a") or not info.has_video:
        return ".m4a"
    return ".mp4"


def _matroska_extension(info: MediaInfo) -> str:
    """WebM is Matroska restricted to VP8/VP9/AV1 video and Vorbis/Opus audio."""
    codecs = {c for c in (info.video_codec, info.audio_codec) if c}
    webm = bool(codecs) and codecs <= WEBM_CODECS
    if info.has_video:
        return ".webm" if webm else ".mkv"
    return ".weba" if webm else ".mka"
