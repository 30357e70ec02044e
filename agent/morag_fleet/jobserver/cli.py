"""`morag-fleet jobserver` (run the reference job server) and `morag-fleet submit` (queue a
file on it)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..log import configure_logging, register_secret
from .config import DEFAULT_MAX_UPLOAD_BYTES
from .tokens import resolve_token

DEFAULT_API_URL = "http://127.0.0.1:8000"


def register(subparsers: Any) -> None:
    _register_jobserver(subparsers)
    _register_submit(subparsers)


def _register_jobserver(subparsers: Any) -> None:
    p = subparsers.add_parser("jobserver", help="run the reference job server (MoRAG's contract)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", type=Path, required=True, help="SQLite database and uploads")
    p.add_argument("--token", help="require this bearer token (visible in the process list: "
                   "prefer --token-file; env MORAG_JOBSERVER_TOKEN)")
    p.add_argument("--token-file", help="file holding the bearer token "
                   "(env MORAG_JOBSERVER_TOKEN_FILE)")
    p.add_argument("--source-root", type=Path, action="append", default=[],
                   help="a directory whose files created jobs may name (repeatable; default: "
                        "the upload dir only)")
    p.add_argument("--max-upload-bytes", type=int, default=DEFAULT_MAX_UPLOAD_BYTES,
                   help="largest upload accepted; larger ones get 413")
    p.add_argument("--lease-seconds", type=float, default=120.0,
                   help="claim lease; an unrenewed job returns to the queue (0: no leases)")
    p.add_argument("--max-retries", type=int, default=3,
                   help="times a job whose lease lapsed is re-queued before it fails")
    p.add_argument("--expire", action=argparse.BooleanOptionalAction, default=False,
                   help="expire unclaimed jobs as MoRAG does (audio 30 min, video 60, "
                        "document 15, others 60); default off")
    p.add_argument("--max-wait", type=float, default=60.0, help="longest long poll (seconds)")
    p.add_argument("--anonymous-results", action="store_true",
                   help="accept a result that names no worker_id (clients speaking only MoRAG's "
                        "plain contract); off: only the worker holding a job may report it")
    p.add_argument("--enable-fault-injection", action="store_true",
                   help="test only: POST/DELETE /_faults scripts errors and cut connections")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run_jobserver)


def _register_submit(subparsers: Any) -> None:
    p = subparsers.add_parser("submit", help="upload a file to the reference job server")
    p.add_argument("file", type=Path)
    p.add_argument("--type", required=True, dest="content_type",
                   help="content type: audio, video, document, image, web, youtube")
    p.add_argument("--api-url", default=os.environ.get("MORAG_API_BASE_URL", DEFAULT_API_URL))
    p.add_argument("--token", help="bearer token (visible in the process list: prefer "
                   "--token-file; env MORAG_API_KEY)")
    p.add_argument("--token-file", help="file holding the bearer token (env MORAG_API_KEY_FILE)")
    p.add_argument("--options", default="{}", help="task options as a JSON object")
    p.add_argument("--wait", action="store_true", help="wait and print the resulting markdown")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait with --wait")
    p.set_defaults(func=run_submit)


def run_jobserver(args: argparse.Namespace) -> int:
    from .config import ServerConfig
    from .server import serve

    configure_logging(args.log_level)
    try:
        token = resolve_token(args.token, args.token_file, "MORAG_JOBSERVER_TOKEN")
        register_secret(token)
        config = ServerConfig(
            data_dir=args.data_dir.resolve(),
            token=token,
            source_roots=tuple(root.resolve() for root in args.source_root),
            max_upload_bytes=args.max_upload_bytes,
            lease_seconds=args.lease_seconds,
            max_retries=args.max_retries,
            expire=args.expire,
            fault_injection=args.enable_fault_injection,
            max_wait=args.max_wait,
            anonymous_results=args.anonymous_results,
        )
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        print(f"morag-fleet jobserver: {exc}", file=sys.stderr)
        return 2
    serve(config, args.host, args.port)
    return 0


def _parse_options(raw: str) -> dict[str, Any]:
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--options is not valid JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON object")
    return options


def run_submit(args: argparse.Namespace) -> int:
    from .submit import JobClient, SubmitError

    try:
        token = resolve_token(args.token, args.token_file, "MORAG_API_KEY")
        options = _parse_options(args.options)
        if not args.file.is_file():
            raise ValueError(f"{args.file}: no such file")
    except ValueError as exc:
        print(f"morag-fleet submit: {exc}", file=sys.stderr)
        return 2
    client = JobClient(args.api_url, token)
    try:
        job_id = client.upload(args.file, args.content_type, options)
        print(job_id, flush=True)
        if not args.wait:
            return 0
        answer = client.wait_for_result(job_id, time.monotonic() + args.timeout)
    except (SubmitError, TimeoutError) as exc:
        print(f"morag-fleet submit: {exc}", file=sys.stderr)
        return 1
    if answer["status"] != "completed":
        reason = answer["error_message"]
        print(f"morag-fleet submit: job {job_id} failed: {reason}", file=sys.stderr)
        return 1
    sys.stdout.write(answer["content"] or "")
    if answer["content"] and not answer["content"].endswith("\n"):
        sys.stdout.write("\n")
    return 0
