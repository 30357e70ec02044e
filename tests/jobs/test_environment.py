"""Proxy and CA settings from the environment, as every `requests` program reads them, although
the client resolves them once per origin instead of on every call."""

from __future__ import annotations

import pytest

from .loopback import Req, make_client
from .test_connection import morag_like

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def no_job(req: Req) -> None:
    req.send(204)


def test_http_proxy_from_the_environment_carries_every_call(serve, monkeypatch) -> None:
    api, proxy = serve(no_job), serve(no_job)  # a forward proxy sees absolute-form targets
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with make_client(api.url) as client:
        assert client.poll(["document"]) is None
        assert client.poll(["document"]) is None
    assert api.seen == []
    assert [s.path.split("?")[0] for s in proxy.seen] == ["/api/v1/remote-jobs/poll"] * 2


def test_no_proxy_names_hosts_reached_directly(serve, monkeypatch) -> None:
    api, proxy = serve(no_job), serve(no_job)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with make_client(api.url) as client:
        assert client.poll(["document"]) is None
    assert proxy.seen == []
    assert [s.path.split("?")[0] for s in api.seen] == ["/api/v1/remote-jobs/poll"]


def test_ca_bundle_from_the_environment_is_trusted(serve, self_signed, monkeypatch) -> None:
    server = serve(morag_like, tls=self_signed.server_context())
    with make_client(server.url) as client:
        assert client.test_connection().kind == "tls"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(self_signed.cert_pem))
    with make_client(server.url) as client:
        report = client.test_connection()
    assert (report.ok, report.kind) == (True, "ok"), report.message
    # the agent's own ca_bundle setting wins over the environment's
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    with make_client(server.url, ca_bundle=str(self_signed.cert_pem)) as client:
        assert client.test_connection().ok
