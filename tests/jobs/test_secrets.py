"""The API token goes to the server and nowhere else: not into logs, exception messages or
reprs, even when a hostile server echoes it back."""

from __future__ import annotations

import logging
from pathlib import Path

from structlog.testing import capture_logs

from morag_fleet.jobs.errors import ApiError
from morag_fleet.jobs.models import Job, JobResult

from .loopback import FAST_RETRY, TOKEN, Req, make_client


def echo_token(req: Req) -> None:
    """Every answer repeats the Authorization header in its detail, body and a header."""
    auth = req.header("Authorization") or ""
    path = req.path
    if path.endswith("/poll"):
        req.json(503, {"detail": f"overloaded; you sent {auth}"})
    elif path.endswith("/result"):
        req.json(422, {"detail": [{"msg": f"bad {auth}"}]})
    elif path.endswith("/status"):
        req.send(401, f"<h1>{auth} refused</h1>".encode(), {"X-Echo": auth})
    elif path.endswith("/lease"):
        req.json(418, {"detail": auth})
    else:  # download
        req.start(200, {"Content-Length": "100", "Content-Disposition":
                        f'attachment; filename="{TOKEN}.txt"'})
        req.write(b"short")
        req.close_after()


def test_the_token_never_leaks(serve, tmp_path: Path, caplog) -> None:
    server = serve(echo_token)
    job = Job("leaky-job", "/api/v1/remote-jobs/leaky-job/download", "document")
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request at DEBUG
    with capture_logs() as logs, make_client(server.url, retry=FAST_RETRY) as client:
        texts += [repr(client), repr(client._auth), repr(client.retry)]
        calls = [lambda: client.poll(["document"]),
                 lambda: client.submit_result("leaky-job", JobResult(success=False)),
                 lambda: client.job_status("leaky-job"),
                 lambda: client.renew_lease("leaky-job"),
                 lambda: client.download(job, tmp_path)]
        for call in calls:
            try:
                call()
            except ApiError as exc:
                texts += [str(exc), repr(exc), str(exc.args)]
            else:
                raise AssertionError("every call here must fail")
        report = client.test_connection()
        texts.append(repr(report))
    texts += [repr(event) for event in logs]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(p) for p in tmp_path.rglob("*")]

    assert any(seen.headers.get("Authorization") == f"Bearer {TOKEN}" for seen in server.seen)
    assert any(e["event"] == "api_retry" for e in logs)  # the capture did see our log events
    assert len(texts) > 15
    leaks = [text for text in texts if TOKEN in text]
    assert leaks == []
