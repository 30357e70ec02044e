"""The name a downloaded source gets: taken from `Content-Disposition`, never trusted as a path.

MoRAG's document processor picks a format by extension, so the extension is kept; everything else
about the name is made harmless: one path component, no control or bidi characters, no leading dot,
no Windows-reserved device names, at most `MAX_NAME_BYTES` of UTF-8. When nothing usable is left,
the job id plus an extension from the response's Content-Type is used.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from email.message import Message
from email.utils import collapse_rfc2231_value

MAX_NAME_BYTES = 200  # well under the 255 bytes most filesystems allow, room for suffixes
MAX_EXT_CHARS = 16
_EXTENSION = re.compile(rf"\.([A-Za-z0-9][A-Za-z0-9_+-]{{0,{MAX_EXT_CHARS - 1}}})$")
_UNSAFE = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                     *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_USELESS_TYPES = {"application/octet-stream", "binary/octet-stream", "application/unknown"}


def filename_from_disposition(header: str | None) -> str | None:
    """The file name a `Content-Disposition` value carries, decoded, or None.

    `filename*` (RFC 5987/6266, percent-encoded with a charset) wins over `filename`, as RFC 6266
    asks; an unknown charset is decoded as ASCII with replacement characters rather than refused.
    The result is raw server text: pass it through `sanitize_filename` before any use.
    """
    if not header:
        return None
    message = Message()
    try:
        message["Content-Disposition"] = header
        params = message.get_params(header="content-disposition") or []
    except (ValueError, TypeError, IndexError):
        return None
    plain: str | None = None
    for key, value in params[1:]:
        if key.lower() != "filename":
            continue
        if isinstance(value, tuple):
            return str(collapse_rfc2231_value(value, errors="replace"))
        if plain is None:
            plain = str(value)
    return plain


def extension_for_type(content_type: str | None) -> str:
    """".pdf" for application/pdf; "" when the type says nothing (octet-stream) or is unknown."""
    if not content_type:
        return ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if not mime or mime in _USELESS_TYPES:
        return ""
    return mimetypes.guess_extension(mime, strict=False) or ""


def _last_component(name: str) -> str:
    """Drop any directory part, POSIX or Windows (`C:\\x\\evil.exe` -> `evil.exe`)."""
    return re.split(r"[/\\]", name)[-1]


def _clean_chars(name: str) -> str:
    """NFC, without control/format characters (NUL, newlines, RTL overrides), with characters
    that are unsafe on some filesystem replaced by `_`."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = name.replace("\ufffd", "_")
    return _UNSAFE.sub("_", name)


def _split_extension(name: str) -> tuple[str, str]:
    match = _EXTENSION.search(name)
    if not match or match.start() == 0:
        return name, ""
    return name[: match.start()], "." + match.group(1)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def sanitize_filename(
    raw: str | None, fallback_stem: str, content_type: str | None = None
) -> str:
    """A safe single-component name for `raw`, or `fallback_stem` + an extension from
    `content_type` when `raw` has nothing usable. Never empty, never `.`/`..`, never hidden."""
    fallback_ext = extension_for_type(content_type)
    name = _clean_chars(_last_component(raw or ""))
    name = name.strip().lstrip(".").strip().rstrip(". ")
    stem, ext = _split_extension(name)
    stem = stem.strip().rstrip(". ")
    if stem.startswith("-"):  # a name must never read as a command-line option to a tool
        stem = "_" + stem[1:]
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    if not stem:
        stem = _clean_chars(fallback_stem).lstrip(".") or "source"
    ext = ext or fallback_ext
    stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(ext.encode("utf-8"))).rstrip(". ") or "source"
    return stem + ext


def printable_name(raw: str | None, limit: int = 512) -> str:
    """The server's name for display and metadata: no control characters, bounded length."""
    if not raw:
        return ""
    text = "".join(ch for ch in raw if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return text[:limit]
