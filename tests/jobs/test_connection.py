"""test_connection() tells apart its failure kinds, against real loopback servers, without ever
polling (a poll would claim a job)."""

from __future__ import annotations

import re

import pytest

from morag_fleet.jobs.errors import ApiError, ApiUnavailable
from morag_fleet.jobs.models import ConnectionReport

from .loopback import Req, make_client

STATUS_PATH = re.compile(r"^/api/v1/remote-jobs/([0-9a-f-]{36})/status$")


def morag_like(req: Req) -> None:
    """MoRAG's answer to a status request for an unknown job."""
    match = STATUS_PATH.match(req.path)
    if match:
        req.json(404, {"detail": f"Job {match[1]} not found"})
    else:
        req.json(404, {"detail": "Not Found"})


def check(url: str, **overrides) -> ConnectionReport:
    with make_client(url, **overrides) as client:
        return client.test_connection()


def test_morag_is_recognised_without_polling(serve) -> None:
    server = serve(morag_like)
    report = check(server.url)
    assert (report.ok, report.kind) == (True, "ok"), report.message
    assert all("/poll" not in seen.path for seen in server.seen)


def test_a_server_found_through_its_openapi_document(serve) -> None:
    def handle(req: Req) -> None:
        if req.path == "/openapi.json":
            req.json(200, {"openapi": "3.1.0", "paths": {"/api/v1/remote-jobs/poll": {}}})
        else:
            req.json(404, {"detail": "Not Found"})

    server = serve(handle)
    report = check(server.url)
    assert (report.ok, report.kind) == (True, "ok"), report.message
    assert [s.path for s in server.seen][-1] == "/openapi.json"


def test_unreachable(refused_url) -> None:
    report = check(refused_url)
    assert (report.ok, report.kind) == (False, "unreachable")
    assert refused_url in report.message


def test_tls_failure_with_an_untrusted_certificate(serve, self_signed) -> None:
    server = serve(morag_like, tls=self_signed.server_context())
    report = check(server.url)
    assert (report.ok, report.kind) == (False, "tls"), report.message
    assert "ca_bundle" in report.message


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_the_ca_bundle_or_without_verification_is_ok(serve, self_signed) -> None:
    server = serve(morag_like, tls=self_signed.server_context())
    trusted = check(server.url, ca_bundle=str(self_signed.cert_pem))
    assert (trusted.ok, trusted.kind) == (True, "ok"), trusted.message
    unverified = check(server.url, verify_tls=False)
    assert (unverified.ok, unverified.kind) == (True, "ok"), unverified.message


def test_auth_refused(serve) -> None:
    server = serve(lambda req: req.json(401, {"detail": "Invalid bearer token"}))
    report = check(server.url)
    assert (report.ok, report.kind) == (False, "auth")
    assert "refused" in report.message
    no_key = check(server.url, api_key=None)
    assert no_key.kind == "auth" and "no api_key" in no_key.message


def test_a_web_page_is_not_morag(serve) -> None:
    server = serve(lambda req: req.send(200, b"<html><title>Welcome to nginx!</title></html>",
                                        {"Content-Type": "text/html"}))
    report = check(server.url)
    assert (report.ok, report.kind) == (False, "not_morag"), report.message
    assert "api_base_url" in report.message


def test_another_fastapi_app_is_not_morag(serve) -> None:
    def handle(req: Req) -> None:
        if req.path == "/openapi.json":
            req.json(200, {"openapi": "3.1.0", "paths": {"/items": {}}})
        else:
            req.json(404, {"detail": "Not Found"})

    report = check(serve(handle).url)
    assert (report.ok, report.kind) == (False, "not_morag"), report.message


def test_a_server_error_is_error(serve) -> None:
    server = serve(lambda req: req.json(500, {"detail": "database unavailable"}))
    report = check(server.url)
    assert (report.ok, report.kind) == (False, "error")
    assert "database unavailable" in report.message


def test_a_missing_ca_bundle_is_named(serve, self_signed, tmp_path) -> None:
    server = serve(morag_like, tls=self_signed.server_context())
    missing = tmp_path / "nope.pem"
    report = check(server.url, ca_bundle=str(missing))
    assert (report.ok, report.kind) == (False, "tls") and str(missing) in report.message
    with make_client(server.url, ca_bundle=str(missing)) as client, \
            pytest.raises(ApiError, match=r"CA certificate bundle") as caught:
        client.poll(["audio"])
    assert not isinstance(caught.value, ApiUnavailable)  # configuration: not retried
    assert server.seen == []
