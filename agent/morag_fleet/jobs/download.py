"""Streaming a job's source to disk without trusting the server's name, size or connection.

The body goes in 1 MiB chunks to a hidden `.part-*` file inside the job directory (memory stays
flat for any size), sha256 and size are computed on the way, and the size cap is checked before
the first byte (Content-Length, Content-Range) and after every chunk. A connection that drops
mid-body is resumed with `Range: bytes=N-`; a 206 must start exactly at N, a 200 means the server
ignored the Range and the file restarts from zero. Only a complete file is renamed to its
sanitised name; on any failure the partial file is removed and nothing else was ever written.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from morag_fleet.jobs.errors import DownloadError
from morag_fleet.jobs.filenames import (
    filename_from_disposition,
    printable_name,
    sanitize_filename,
)
from morag_fleet.jobs.models import DownloadedFile
from morag_fleet.log import get_logger

log = get_logger(__name__)

CHUNK_BYTES = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_DROPPED = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    Urllib3Error,
)

Fetch = Callable[[int], requests.Response]  # offset -> open 2xx response (Range when offset > 0)
Progress = Callable[[int, int | None], None]


class _Restart(Exception):
    """The server's answer cannot continue the partial file; start again from byte 0."""


class _BackgroundSha256:
    """sha256 on a second core while the caller keeps reading and writing.

    Hashing in the reading thread would otherwise slow downloads on loopback and fast LANs;
    hashlib releases the GIL for large buffers, so a thread really runs in parallel. The queue
    is bounded (`depth` chunks), which keeps memory flat when the hash falls behind.
    """

    _RESET = object()

    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[bytes | object | None] = queue.Queue(maxsize=depth)
        self._hasher = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if chunk is self._RESET:
                self._hasher = hashlib.sha256()
            else:
                self._hasher.update(chunk)  # type: ignore[arg-type]

    def update(self, chunk: bytes) -> None:
        if chunk:
            self._queue.put(chunk)

    def reset(self) -> None:
        self._queue.put(self._RESET)

    def hexdigest(self) -> str:
        """Waits for every queued chunk; the object is finished afterwards."""
        self.close()
        return self._hasher.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


@dataclass(eq=False)
class SourceDownload:
    """One download attempt sequence for one job; `run()` returns the finished file."""

    job_id: str
    dest_dir: Path
    max_bytes: int
    fetch: Fetch
    pause: Callable[[int], None]
    progress: Progress | None = None
    max_resumes: int = 3
    written: int = field(default=0, init=False)
    total: int | None = field(default=None, init=False)  # the full size, once the server said
    hasher: _BackgroundSha256 = field(default_factory=_BackgroundSha256, init=False)
    raw_name: str | None = field(default=None, init=False)
    content_type_header: str | None = field(default=None, init=False)

    def run(self) -> DownloadedFile:
        if not self.dest_dir.is_dir():
            raise DownloadError(f"download {self.job_id}: {self.dest_dir} is not a directory")
        part = self.dest_dir / f".part-{secrets.token_hex(8)}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(os.open(part, flags, 0o600), "wb", buffering=0) as out:
                self._fetch_all(out)
            return self._finish(part)
        except OSError as exc:
            raise DownloadError(f"download {self.job_id}: cannot write: {exc.strerror}") from None
        finally:
            self.hasher.close()
            part.unlink(missing_ok=True)

    # ----- the resume loop --------------------------------------------------------------------

    def _fetch_all(self, out: BinaryIO) -> None:
        resumes = 0
        while True:
            response = self.fetch(self.written)
            try:
                resumable = self._accept(response, out)
                self._stream(response, out)
                if self.total is None or self.written == self.total:
                    return
                cause = f"body ended at {self.written} of {self.total} bytes"
            except _Restart as exc:
                self._reset(out)
                resumable, cause = True, str(exc)
            except _DROPPED as exc:
                cause = f"connection dropped after {self.written} bytes ({type(exc).__name__})"
            finally:
                response.close()
            if not resumable or resumes >= self.max_resumes:
                raise DownloadError(
                    f"download {self.job_id}: truncated: {cause}; gave up after {resumes} "
                    f"resume(s)")
            resumes += 1
            log.warning("download_resume", job_id=self.job_id, offset=self.written,
                        resume=resumes, cause=cause)
            self.pause(resumes)

    def _accept(self, response: requests.Response, out: BinaryIO) -> bool:
        """Check a fresh response against the partial file; True if it may be resumed later."""
        headers = response.headers
        if self.raw_name is None:
            self.raw_name = filename_from_disposition(headers.get("Content-Disposition"))
        if not self.content_type_header:
            self.content_type_header = headers.get("Content-Type")
        coding = headers.get("Content-Encoding", "").strip().lower()
        encoded = coding not in ("", "identity")
        if response.status_code == 206 and not encoded:
            self._accept_range(headers.get("Content-Range"))
        elif response.status_code == 200:
            if self.written:
                log.warning("download_restart", job_id=self.job_id, offset=self.written,
                            cause="server ignored Range")
                self._reset(out)
            self.total = None if encoded else _content_length(headers, self.job_id)
        else:
            raise DownloadError(
                f"download {self.job_id}: unexpected answer {response.status_code}")
        if self.total is not None and self.total > self.max_bytes:
            raise DownloadError(f"download {self.job_id}: source is {self.total} bytes, over the "
                                f"cap of {self.max_bytes}")
        return not encoded

    def _accept_range(self, header: str | None) -> None:
        match = _CONTENT_RANGE.match(header or "")
        if not match:
            raise _Restart(f"206 with unreadable Content-Range {header!r:.80}")
        start, end, total = int(match[1]), int(match[2]), match[3]
        full = None if total == "*" else int(total)
        if start != self.written or end < start or (full is not None and end >= full):
            raise _Restart(f"206 for {header!r:.80} does not continue at byte {self.written}")
        if full is not None and self.total is not None and full != self.total:
            raise _Restart(f"source size changed from {self.total} to {full} bytes")
        self.total = full if full is not None else self.total

    def _stream(self, response: requests.Response, out: BinaryIO) -> None:
        for chunk in response.iter_content(CHUNK_BYTES):
            if self.written + len(chunk) > self.max_bytes:
                raise DownloadError(f"download {self.job_id}: source exceeds the cap of "
                                    f"{self.max_bytes} bytes")
            out.write(chunk)
            self.hasher.update(chunk)
            self.written += len(chunk)
            if self.progress is not None:
                self.progress(self.written, self.total)

    def _reset(self, out: BinaryIO) -> None:
        out.seek(0)
        out.truncate()
        self.written = 0
        self.total = None
        self.hasher.reset()

    # ----- the finished file ------------------------------------------------------------------

    def _finish(self, part: Path) -> DownloadedFile:
        name = sanitize_filename(self.raw_name, self.job_id, self.content_type_header)
        final = self.dest_dir / name
        if final.parent != self.dest_dir or name in (".", "..") or "/" in name or "\0" in name:
            raise DownloadError(f"download {self.job_id}: refusing file name {name!r}")
        os.replace(part, final)
        mime = (self.content_type_header or "application/octet-stream").split(";")[0].strip()
        return DownloadedFile(
            path=final,
            original_name=printable_name(self.raw_name),
            size=self.written,
            sha256=self.hasher.hexdigest(),
            mime_type=mime.lower() or "application/octet-stream",
        )


def _content_length(headers: Mapping[str, str], job_id: str) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise DownloadError(f"download {job_id}: bad Content-Length {value!r:.40}")
    return int(value)
