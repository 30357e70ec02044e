"""Which files a job may name, and when an uploaded file goes away.

A created job names a file the server reads and hands to any worker holding a token, so an
unchecked `source_file_path` would serve anything the server can read (its own database,
`/etc/shadow`). Only files under the configured source roots (the upload dir by default) are
taken, and never the server's own data outside the upload dir. Uploads are the server's own
copies: each is removed once every job naming it has ended, so the disk does not fill with
finished work.
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import ServerConfig
from .store import JobStore

# An upload with no job is a create that never happened (a crash between the two steps); it is
# removed once it is this old, so an upload whose job is being created right now is kept.
ORPHAN_AGE_SECONDS = 3600.0


class SourceRefused(ValueError):
    """The path names a file outside the source roots; the message says which roots."""


def checked_source(raw: str, config: ServerConfig) -> Path:
    """The resolved path when it lies under a source root; symlinks are followed first, so a
    link inside a root cannot point outside it."""
    path = Path(raw)
    if not path.is_absolute():
        raise SourceRefused(f"source_file_path must be an absolute path, got {raw!r}")
    resolved = path.resolve()
    data_dir, files_dir = config.data_dir.resolve(), config.files_dir.resolve()
    if _under(resolved, data_dir) and not _under(resolved, files_dir):
        raise SourceRefused("source_file_path names the job server's own data")
    roots = config.allowed_roots
    if not any(_under(resolved, root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise SourceRefused(f"source_file_path is outside the server's source roots ({shown}); "
                            "start the server with --source-root for that directory")
    return resolved


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def remove_finished_uploads(store: JobStore, files_dir: Path, now: float | None = None
                            ) -> list[Path]:
    """Delete uploads whose jobs all ended (completed, failed, expired) and old orphans;
    returns what was removed."""
    now = time.time() if now is None else now
    try:
        candidates = [p for p in files_dir.iterdir() if p.is_file()]
    except OSError:
        return []
    if not candidates:
        return []
    open_paths = store.open_sources([str(p) for p in candidates])
    removed = []
    for path in candidates:
        verdict = open_paths.get(str(path))
        if verdict is True:
            continue  # a job still needs it
        if verdict is None and now - _mtime(path, now) < ORPHAN_AGE_SECONDS:
            continue  # no job yet: maybe being created right now
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def _mtime(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return default
