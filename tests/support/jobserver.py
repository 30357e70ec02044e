"""The reference job server as a real subprocess (`morag-fleet jobserver`), with helpers that
speak its HTTP API, for tests that need a job source. It runs through the real `morag-fleet`
entry point (`python -m morag_fleet.cli.fleet_main`)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests

from .process import REPO_ROOT, ServerProcess, wait_for

JOBS = "/api/v1/remote-jobs"
# Tests and benchmarks create jobs for files in their temp dirs and the repo's samples.
TEST_SOURCE_ROOTS = (Path(tempfile.gettempdir()), REPO_ROOT)
T = TypeVar("T")


def main_module() -> str:
    return "morag_fleet.cli.fleet_main"


class JobServer(ServerProcess):
    ready_path = f"{JOBS}/_stats"

    def __init__(
        self,
        data_dir: Path,
        *,
        token: str | None = None,
        lease_seconds: float | None = None,
        max_retries: int | None = None,
        faults: bool = False,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        source_roots: tuple[Path, ...] = TEST_SOURCE_ROOTS,
    ) -> None:
        super().__init__(data_dir / "jobserver.log", port, token)
        self.data_dir = data_dir
        self.source_roots = source_roots
        self.lease_seconds = lease_seconds
        self.max_retries = max_retries
        self.faults = faults
        self.extra_args = extra_args

    def argv(self) -> list[str]:
        args = ["-m", main_module(), "jobserver", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        if self.token:  # from a file, as in production: a flag would show in the process list
            token_file = self.data_dir.parent / f"{self.data_dir.name}.token"
            token_file.parent.mkdir(parents=True, exist_ok=True)
            token_file.write_text(self.token)
            args += ["--token-file", str(token_file)]
        for root in self.source_roots:
            args += ["--source-root", str(root)]
        if self.lease_seconds is not None:
            args += ["--lease-seconds", str(self.lease_seconds)]
        if self.max_retries is not None:
            args += ["--max-retries", str(self.max_retries)]
        if self.faults:
            args.append("--enable-fault-injection")
        return [*args, *self.extra_args]

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def upload(self, path: Path, content_type: str, task_options: dict | None = None) -> str:
        with Path(path).open("rb") as stream:
            answer = self._json(
                "POST", f"{JOBS}/upload", files={"file": (Path(path).name, stream)},
                data={"content_type": content_type, "task_options": json.dumps(task_options or {})},
            )
        return str(answer["job_id"])

    def create(self, path: Path, content_type: str, task_options: dict | None = None,
               ingestion_task_id: str = "ingest-test") -> str:
        """A job for a file the server reads in place (MoRAG's own way of creating jobs)."""
        body = {"source_file_path": str(Path(path).resolve()), "content_type": content_type,
                "ingestion_task_id": ingestion_task_id, "task_options": task_options or {}}
        return str(self._json("POST", f"{JOBS}/", json=body)["job_id"])

    def create_many(self, path: Path, content_type: str, count: int,
                    task_options: dict | None = None) -> list[str]:
        return [self.create(path, content_type, task_options) for _ in range(count)]

    def poll(self, worker_id: str, content_types: str, **params: Any) -> dict[str, Any]:
        query = {"worker_id": worker_id, "content_types": content_types, "max_jobs": 1, **params}
        return self._json("GET", f"{JOBS}/poll", params=query, timeout=90)

    def put_result(self, job_id: str, success: bool = True, content: str | None = "done",
                   worker_id: str | None = None, **fields: Any) -> requests.Response:
        body = {"success": success, "content": content, **fields}
        params = {"worker_id": worker_id} if worker_id else None
        return self.request("PUT", f"{JOBS}/{job_id}/result", json=body, params=params)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"{JOBS}/{job_id}/status")

    def result(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"{JOBS}/{job_id}/result")

    def stats(self) -> dict[str, int]:
        return self._json("GET", f"{JOBS}/_stats")

    def set_faults(self, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return self._json("POST", "/_faults", json=rules)

    def clear_faults(self) -> None:
        self._json("DELETE", "/_faults")

    def wait_for(self, predicate: Callable[[], T], timeout: float = 60.0,
                 message: str = "condition") -> T:
        return wait_for(predicate, timeout, message)


@contextmanager
def running_jobserver(
    data_dir: Path,
    *,
    token: str | None = None,
    lease_seconds: float | None = None,
    max_retries: int | None = None,
    faults: bool = False,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    source_roots: tuple[Path, ...] = TEST_SOURCE_ROOTS,
) -> Iterator[JobServer]:
    server = JobServer(data_dir, token=token, lease_seconds=lease_seconds,
                       max_retries=max_retries, faults=faults, port=port, extra_args=extra_args,
                       source_roots=source_roots)
    server.start()
    try:
        yield server
    finally:
        server.stop()
