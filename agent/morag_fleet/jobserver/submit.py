"""`morag-fleet submit`: upload a file to the reference job server and, if asked, wait for its
markdown. Uses the server's extensions (upload, result read-back), so it does not work against
MoRAG itself, which creates its jobs internally."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

JOBS_PATH = "/api/v1/remote-jobs"
FINISHED = ("completed", "failed")


class SubmitError(Exception):
    """A problem a person can act on; the message says what happened."""


@dataclass(frozen=True)
class JobClient:
    api_url: str
    token: str | None = None
    timeout: float = 30.0

    def _url(self, path: str) -> str:
        return self.api_url.rstrip("/") + JOBS_PATH + path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = requests.request(
                method, self._url(path), headers=self._headers(), timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise SubmitError(f"cannot reach {self.api_url}: {exc}") from exc
        if response.status_code >= 400:
            raise SubmitError(f"{method} {path} -> HTTP {response.status_code}: {response.text}")
        return response.json()

    def upload(self, path: Path, content_type: str, options: dict[str, Any]) -> str:
        with path.open("rb") as stream:
            answer = self._request(
                "POST",
                "/upload",
                files={"file": (path.name, stream)},
                data={"content_type": content_type, "task_options": json.dumps(options)},
            )
        return str(answer["job_id"])

    def result(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/{job_id}/result")

    def wait_for_result(self, job_id: str, deadline: float, interval: float = 0.5) -> dict:
        """Polls until the job is finished. A failed request is retried until the deadline: the
        server may be restarting, and the job is safe in its database."""
        status = "unknown"
        while True:
            try:
                answer = self.result(job_id)
            except SubmitError:
                if time.monotonic() >= deadline:
                    raise
            else:
                if answer["status"] in FINISHED:
                    return answer
                status = answer["status"]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} not finished in time (last status: {status})")
            time.sleep(interval)
