"""Refuses an upload whose declared size is over the cap before its body is read.

FastAPI parses a multipart form (spooling the file to a temporary file) before the route runs,
so the route's own byte count alone would let a client fill the server's temp space first. A
body sent without Content-Length is still counted by the route as it is copied.
"""

from __future__ import annotations

import json
from typing import Any

# room for the multipart boundaries and the small form fields around the file
FORM_OVERHEAD_BYTES = 64 * 1024

Scope = dict[str, Any]


class UploadSizeLimit:
    """Pure ASGI middleware: 413 for a POST to `path` whose Content-Length is over the cap."""

    def __init__(self, app: Any, path: str, max_bytes: int) -> None:
        self.app = app
        self.path = path
        self.limit = max_bytes + FORM_OVERHEAD_BYTES
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and \
                scope["path"].rstrip("/") == self.path.rstrip("/") and self._too_big(scope):
            await self._refuse(send)
            return
        await self.app(scope, receive, send)

    def _too_big(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value) > self.limit
                except ValueError:
                    return False
        return False

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"upload is larger than the server's limit of "
                                     f"{self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
