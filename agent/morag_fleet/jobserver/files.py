"""Source files: uploads are stored under generated names (a client's file name is never used
as a path), while the original name is kept for the download's Content-Disposition."""

from __future__ import annotations

import re
import shutil
import unicodedata
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
MAX_NAME_LENGTH = 200
CHUNK = 1024 * 1024


class UploadTooLarge(ValueError):
    """The upload is over the server's cap; nothing of it is kept."""


def display_name(raw: str | None, fallback: str = "source") -> str:
    """The last path part of a client-given name, without control characters: fit for a
    Content-Disposition header and nothing else."""
    if not raw:
        return fallback
    name = PureWindowsPath(PurePosixPath(raw).name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return fallback
    if len(name) > MAX_NAME_LENGTH:
        suffix = Path(name).suffix if SAFE_SUFFIX.match(Path(name).suffix) else ""
        name = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
    return name


def store_upload(stream: BinaryIO, original_name: str, files_dir: Path,
                 max_bytes: int | None = None) -> Path:
    """Copy an upload to a fresh file whose name is generated here; the extension is kept
    (converters pick the format by it) only when it is plainly an extension. Over `max_bytes`
    the partial copy is removed and `UploadTooLarge` raised."""
    suffix = Path(original_name).suffix
    suffix = suffix.lower() if SAFE_SUFFIX.match(suffix) else ""
    files_dir.mkdir(parents=True, exist_ok=True)
    target = files_dir / f"{uuid.uuid4().hex}{suffix}"
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as out:
            if max_bytes is None:
                shutil.copyfileobj(stream, out, length=CHUNK)
            else:
                _copy_capped(stream, out, max_bytes)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _copy_capped(stream: BinaryIO, out: BinaryIO, max_bytes: int) -> None:
    written = 0
    while chunk := stream.read(CHUNK):
        written += len(chunk)
        if written > max_bytes:
            raise UploadTooLarge(f"upload is larger than the server's limit of {max_bytes} bytes")
        out.write(chunk)
