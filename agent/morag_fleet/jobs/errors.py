"""What can go wrong talking to the jobs API, as exception types the agent can act on.

Each type maps to one decision: retry later (`ApiUnavailable`), stop and tell the operator
(`ApiAuthError`), give the job up (`ApiNotFound`, `ApiConflict`, `DownloadError`), or distrust the
server (`ApiProtocolError`). Messages are built from status codes, paths and the server's `detail`
with the API token removed, so they are safe to log and to send back as a job's error message.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of every client error. `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class ApiUnavailable(ApiError):
    """Connection refused, DNS failure, timeout, 408/429/5xx: try again later.

    `retry_after` carries the server's Retry-After (seconds) when it asked for a longer pause than
    the client was willing to sleep inside one call, so a caller can wait that long itself."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ApiAuthError(ApiError):
    """401/403 from the API: the token is missing or refused; retrying will not help."""


class ApiNotFound(ApiError):
    """404: the job (or the endpoint) does not exist on this server."""


class ApiConflict(ApiError):
    """409, or a download refused because the job is no longer ours to process (MoRAG's 403)."""


class ApiProtocolError(ApiError):
    """The answer is not what MoRAG's contract says (bad JSON, missing fields, wrong types), or the
    server rejected our request as malformed (400/422). `claimed_job_id` is set when a malformed
    poll answer still named a job: the server handed it to us and it must be reported."""

    claimed_job_id: str | None = None


class DownloadError(ApiError):
    """The source cannot be fetched safely: over the size cap, truncated, length mismatch, a
    `Content-Range` that does not fit, or a file that cannot be written."""


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced; servers may echo request headers back."""
    if secret and text:
        return text.replace(secret, "***")
    return text
