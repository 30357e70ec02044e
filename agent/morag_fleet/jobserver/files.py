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


def store_upload(stream: BinaryIO, original_name: str, files_dir: Path) -> Path:
    """Copy an upload to a fresh file whose name is generated here; the extension is kept
    (converters pick the format by it) only when it is plainly an extension."""
    suffix = Path(original_name).suffix
    suffix = suffix.lower() if SAFE_SUFFIX.match(suffix) else ""
    files_dir.mkdir(parents=True, exist_ok=True)
    target = files_dir / f"{uuid.uuid4().hex}{suffix}"
    partial = target.with_name(target.name + ".part")
    with partial.open("wb") as out:
        shutil.copyfileobj(stream, out, length=1024 * 1024)
    partial.replace(target)
    return target
