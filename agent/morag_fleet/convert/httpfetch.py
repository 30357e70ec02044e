"""A careful HTTP GET for URLs that come from jobs (web pages, media links).

A job's URL is untrusted: it may point at the worker's own network (cloud metadata services,
admin panels on 10.x) or at something huge. So every hop of a redirect chain is resolved and
checked against private/loopback/link-local ranges, redirects are followed by hand and limited,
the body is streamed with a byte cap and an overall deadline, and the content type is checked
before the body is read. trafilatura's own fetcher is not used: it refuses loopback outright,
which the tests need, and offers none of these limits.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from morag_fleet.convert.base import ConversionError

USER_AGENT = "morag-fleet-agent/0.1 (+https://github.com/morag-fleet)"
REDIRECT_CODES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_redirects: int = 5
    allow_private: bool = False


@dataclass(frozen=True)
class FetchedPage:
    url: str  # the final URL after redirects
    content_type: str
    encoding: str | None
    body: bytes


def check_url(url: str, allow_private: bool) -> None:
    """http(s) only, and (unless allowed) no host that resolves to a non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConversionError(f"refusing URL with scheme {parts.scheme or 'none'!r}: "
                              "only http and https are fetched")
    if not parts.hostname:
        raise ConversionError(f"URL has no host: {url[:200]}")
    if allow_private:
        return
    for address in resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)):
        if not address.is_global:
            raise ConversionError(f"refusing to fetch {parts.hostname}: it resolves to the "
                                  f"non-public address {address} (set allow_private to permit)")


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConversionError(f"cannot resolve host {host}: {exc.strerror}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def fetch(url: str, limits: FetchLimits, accept: Collection[str]) -> FetchedPage:
    """GETs `url`, following at most `max_redirects` redirects, each target checked again."""
    deadline = time.monotonic() + limits.total_timeout
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        session.trust_env = False  # proxies from the environment would bypass the address check
        for _ in range(limits.max_redirects + 1):
            check_url(url, limits.allow_private)
            response = _get(session, url, limits)
            if response.status_code in REDIRECT_CODES and response.headers.get("location"):
                response.close()
                url = urljoin(url, response.headers["location"])
                continue
            with response:
                return _read(response, url, limits, accept, deadline)
    raise ConversionError(f"too many redirects (more than {limits.max_redirects})")


def _get(session: requests.Session, url: str, limits: FetchLimits) -> requests.Response:
    try:
        return session.get(url, stream=True, allow_redirects=False,
                           timeout=(limits.connect_timeout, limits.read_timeout))
    except requests.Timeout:
        raise ConversionError(f"timed out fetching {_short(url)}") from None
    except requests.RequestException as exc:
        raise ConversionError(f"cannot fetch {_short(url)}: {type(exc).__name__}") from None


def _read(response: requests.Response, url: str, limits: FetchLimits,
          accept: Collection[str], deadline: float) -> FetchedPage:
    if response.status_code >= 400:
        raise ConversionError(f"{_short(url)} answered HTTP {response.status_code}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if accept and content_type not in accept:
        raise ConversionError(f"{_short(url)} serves {content_type or 'no content type'}, "
                              f"expected one of {', '.join(sorted(accept))}")
    declared = int(response.headers.get("content-length") or 0)
    if declared > limits.max_bytes:
        raise ConversionError(f"{_short(url)} is {declared} bytes, over the {limits.max_bytes} cap")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limits.max_bytes:
                raise ConversionError(f"{_short(url)} is larger than the {limits.max_bytes} cap")
            if time.monotonic() > deadline:
                raise ConversionError(f"fetching {_short(url)} took over "
                                      f"{limits.total_timeout:.0f} s")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise ConversionError(f"download of {_short(url)} broke off: {type(exc).__name__}") \
            from None
    encoding = response.encoding if "charset" in response.headers.get("content-type", "") else None
    return FetchedPage(url, content_type, encoding, b"".join(chunks))


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
