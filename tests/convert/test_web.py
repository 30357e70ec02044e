"""Web: a generated article page served on loopback, and the fetch client's limits."""

from __future__ import annotations

import http.server
from collections.abc import Callable
from pathlib import Path

import pytest

from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.httpfetch import FetchLimits, check_url, fetch
from morag_fleet.convert.web import WebConverter
from morag_fleet.samples import ARTICLE_BLOCKS
from morag_fleet.samples.generate import article_page
from tests.convert.conftest import http_server, job_info_for, url_file

TITLE = "Growing tomatoes on a balcony"
JUNK = ("Home", "About us", "cookies", "Accept all", "garden gnomes", "Sponsored",
        "Commenter Bob", "Commenter Alice", "Footer", "privacy policy")
ALLOW = {"allow_private": True}


@pytest.fixture
def site(tmp_path: Path, serve_dir: Callable[[Path], str]) -> str:
    (tmp_path / "article.html").write_text(
        article_page(TITLE, "Jane Gardener", "2024-05-01", ARTICLE_BLOCKS), encoding="utf-8")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    (tmp_path / "big.html").write_text("<html><body>" + "<p>word</p>" * 100_000 + "</body></html>")
    return serve_dir(tmp_path)


def convert(url: str, tmp_path: Path, options: dict | None = None):
    source = url_file(tmp_path, url)
    return WebConverter().convert(source, options if options is not None else ALLOW,
                                  job_info_for(source, "web"), lambda f, m: None)


def test_article_kept_and_junk_dropped(site: str, tmp_path: Path) -> None:
    result = convert(f"{site}/article.html", tmp_path)
    md = result.markdown
    assert md.startswith(f"# {TITLE}\n\n")
    assert md.count(f"# {TITLE}") == 1
    for kind, content in ARTICLE_BLOCKS:
        if kind == "p":
            assert content in md, content
        elif kind == "h2":
            assert f"## {content}" in md
    assert "| Variety | Days to harvest |" in md and "| Roma | 75 |" in md
    for junk in JUNK:
        assert junk not in md, junk
    meta = result.metadata
    assert meta["title"] == TITLE and meta["author"] == "Jane Gardener"
    assert meta["date"] == "2024-05-01" and meta["language"] == "en"
    assert meta["url"] == f"{site}/article.html" and meta["content_type"] == "web"


def test_loopback_refused_unless_allowed(site: str, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"non-public address 127.0.0.1"):
        convert(f"{site}/article.html", tmp_path, options={})


@pytest.mark.parametrize("url", ["http://10.1.2.3/", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]:8080/", "http://localhost/"])
def test_private_addresses_refused(url: str) -> None:
    with pytest.raises(ConversionError, match=r"non-public address"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://x"])
def test_only_http_schemes(url: str) -> None:
    with pytest.raises(ConversionError, match=r"only http and https"):
        check_url(url, allow_private=True)


def test_content_type_checked(site: str, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"serves image/png"):
        convert(f"{site}/photo.png", tmp_path)


def test_size_cap(site: str, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"over the 100000 cap|larger than the 100000 cap"):
        convert(f"{site}/big.html", tmp_path, {**ALLOW, "max_bytes": 100_000})


def test_http_error_status(site: str, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"answered HTTP 404"):
        convert(f"{site}/missing.html", tmp_path)


class RedirectHandler(http.server.BaseHTTPRequestHandler):
    """/hop/N redirects to /hop/N-1; /hop/0 is a page. /private redirects to a private host."""

    def do_GET(self) -> None:
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            if left > 0:
                self._redirect(f"/hop/{left - 1}")
                return
            body = b"<html><head><title>Arrived</title></head><body><article><p>" + \
                b"You followed every redirect to the final article page. " * 5 + \
                b"</p></article></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._redirect("http://10.0.0.1/admin")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_redirects_followed_and_limited(tmp_path: Path) -> None:
    with http_server(RedirectHandler) as base:
        result = convert(f"{base}/hop/3", tmp_path, {**ALLOW, "max_redirects": 3})
        assert "followed every redirect" in result.markdown
        assert result.metadata["final_url"] == f"{base}/hop/0"
        with pytest.raises(ConversionError, match=r"too many redirects"):
            convert(f"{base}/hop/4", tmp_path, {**ALLOW, "max_redirects": 3})


def test_redirect_target_is_checked_again(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback can serve here, so loopback is let through for the first hop; the
    redirect it answers with, to 10.0.0.1, must still be refused."""
    import morag_fleet.convert.httpfetch as httpfetch

    real_check = httpfetch.check_url

    def loopback_only(target: str, allow_private: bool) -> None:
        real_check(target, allow_private=target.startswith("http://127.0.0.1:"))

    monkeypatch.setattr(httpfetch, "check_url", loopback_only)
    with http_server(RedirectHandler) as base:
        fetch(f"{base}/hop/1", FetchLimits(), ("text/html",))  # loopback hops pass
        with pytest.raises(ConversionError, match=r"non-public address 10.0.0.1"):
            fetch(f"{base}/private", FetchLimits(), ("text/html",))


def test_source_without_url(tmp_path: Path) -> None:
    empty = tmp_path / "empty.url"
    empty.write_text("\n\n")
    with pytest.raises(ConversionError, match=r"holds no URL"):
        WebConverter().convert(empty, ALLOW, job_info_for(empty, "web"), lambda f, m: None)
