"""The reference job server's settings, checked once when the server is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# MoRAG's rule: a job expires this long after its creation, by content type (seconds).
EXPIRY_BY_TYPE = {"audio": 1800.0, "video": 3600.0, "document": 900.0}
DEFAULT_EXPIRY = 3600.0
MAX_LONG_POLL_SECONDS = 60.0
DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    token: str | None = None
    lease_seconds: float = 120.0  # 0 turns leases off: jobs stay claimed forever, as in MoRAG
    max_retries: int = 3
    expire: bool = False  # MoRAG's expiry from creation time; off by default
    fault_injection: bool = False
    max_wait: float = MAX_LONG_POLL_SECONDS
    # accept a result PUT naming no worker (MoRAG's plain clients); then anyone can finish a
    # job another worker holds, so it is off unless asked for (docs/durability.md)
    anonymous_results: bool = False
    # directories whose files a created job may name; none given: the upload dir only
    source_roots: tuple[Path, ...] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0:
            raise ValueError("max_upload_bytes must be > 0")
        for root in self.source_roots:
            if not root.is_dir():
                raise ValueError(f"source root {root} is not a directory")
        if self.lease_seconds < 0:
            raise ValueError("lease_seconds must be >= 0")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")

    @property
    def leases_enabled(self) -> bool:
        return self.lease_seconds > 0

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Resolved, so a symlink in a root's own path does not defeat the comparison."""
        return tuple(root.resolve() for root in self.source_roots or (self.files_dir,))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    def expiry_after(self, content_type: str) -> float | None:
        if not self.expire:
            return None
        return EXPIRY_BY_TYPE.get(content_type, DEFAULT_EXPIRY)

    @property
    def sweep_interval(self) -> float:
        """How often the lease sweep runs: often enough that a lease ends close to its time."""
        if not self.leases_enabled:
            return 5.0
        return max(0.2, min(5.0, self.lease_seconds / 4))
