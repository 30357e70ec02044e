"""The MoRAG remote-jobs API over one `requests.Session`, shared by every slot thread (polls
use a second one, whose connections the stop path can cut off: `pollsockets`).

Reads (poll, status, download, lease renewal) are retried on connection errors, timeouts, 408, 429
and 5xx with capped jittered backoff that honours Retry-After, a bounded number of times, then
raise `ApiUnavailable` (`RetryPolicy` in `retry` states every retry layer's limit). The result PUT
is never retried here: MoRAG runs its whole ingestion inside that request, so after a timeout
the caller must ask the job's status before sending it again.

Thread safety: the client keeps no per-call state; the session's connection pool is sized for the
slots, so one client serves all of them. The API key lives only in a `requests` auth object whose
repr hides it, and every text taken from a server answer is scrubbed of it before it reaches a log
line or an exception.

Proxy and CA settings come from the environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...)
as with any `requests` program, but are read once per origin rather than on every request:
`requests` re-reads the whole environment twice per call otherwise, which cost the agent more
CPU per trivial job than its journal (tests/bench/bench_throughput.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from morag_fleet.jobs.download import SourceDownload
from morag_fleet.jobs.errors import (
    ApiAuthError,
    ApiConflict,
    ApiError,
    ApiNotFound,
    ApiProtocolError,
    ApiUnavailable,
    redact,
)
from morag_fleet.jobs.models import ConnectionReport, DownloadedFile, Job, JobResult
from morag_fleet.jobs.pollsockets import PollSockets
from morag_fleet.jobs.retry import RetryPolicy, parse_retry_after, wait_or_stop
from morag_fleet.log import get_logger, register_secret
from morag_fleet.settings import AgentSettings

log = get_logger(__name__)

API_PREFIX = "/api/v1/remote-jobs"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_JSON_BYTES = 8 * 1024 * 1024  # an API answer larger than this is not MoRAG talking
RETRYABLE_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _BearerAuth(requests.auth.AuthBase):
    """Adds the token per request. Being an auth object (not a session header) keeps it off
    redirects to other hosts and stops ~/.netrc from replacing it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class MoragClient:
    """Poll, download, submit, status and lease calls against one API base URL."""

    def __init__(
        self,
        settings: AgentSettings,
        stop: threading.Event | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.api_base_url.rstrip("/")
        self.stop = stop
        # Every layer above (runner, deliverer, poller) takes its limits from this one policy.
        self.retry = retry or RetryPolicy.from_settings(settings)
        self._secret = settings.api_key or None
        register_secret(self._secret)  # masked in every log event, whoever logs it
        self._auth = _BearerAuth(settings.api_key) if settings.api_key else None
        self._verify = _tls_verify(settings)
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        self._session = session or self._new_session(settings.max_concurrent_jobs)
        # Polls go over a session of their own whose sockets `close_polls` can shut down.
        self._poll_sockets = PollSockets()
        self._poll_session = session or self._new_session(
            settings.max_concurrent_jobs, self._poll_sockets.adapter)

    @staticmethod
    def _new_session(slots: int, adapter_cls: Callable[..., HTTPAdapter] = HTTPAdapter
                     ) -> requests.Session:
        session = requests.Session()
        # retries are ours (backoff, Retry-After, stop event), so urllib3's are off
        adapter = adapter_cls(pool_connections=4, pool_maxsize=max(8, 2 * slots + 4),
                              max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = "morag-fleet-agent"
        session.trust_env = False  # see the module docstring: `_proxies_for` and `_tls_verify`
        return session

    def __repr__(self) -> str:
        return f"MoragClient({self.base_url!r}, worker_id={self.settings.worker_id!r})"

    def __enter__(self) -> MoragClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.close_polls()
        self._session.close()
        self._poll_session.close()

    def close_polls(self) -> None:
        """No poll from now on, and the ones in flight end at once (see `pollsockets`): the
        stop path calls this so that a held long poll cannot claim a job for a stopping agent."""
        self._poll_sockets.close()

    # ----- URLs -------------------------------------------------------------------------------

    def api_url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{path}"

    def job_url(self, job_id: str, action: str) -> str:
        return self.api_url(f"/{quote(job_id, safe='')}/{action}")

    def resolve(self, url: str) -> str:
        """A source URL from a poll answer, made absolute. A path is taken relative to the API
        base URL (so a base behind a path prefix still works); absolute URLs are kept."""
        if url.startswith(("http://", "https://")):
            return url
        return self.base_url + ("" if url.startswith("/") else "/") + url

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for this URL's origin (none where NO_PROXY says so)."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        found = self._proxies.get(origin)
        if found is None:
            found = requests.utils.get_environ_proxies(url)
            self._proxies[origin] = found
        return found

    def _same_origin(self, url: str) -> bool:
        mine, theirs = urlsplit(self.base_url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)

    # ----- one request, with retries ----------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        retry: bool = True,
        read_body: bool = True,
        timeout: tuple[float, float] | None = None,
        session: requests.Session | None = None,
        also_stop: threading.Event | None = None,
        **kwargs: Any,
    ) -> tuple[requests.Response, bytes]:
        """The first answer that is not worth retrying, with its body (bounded) when
        `read_body`; otherwise the response is still open for streaming and the body is b"".
        Raises ApiUnavailable when retries are exhausted, disabled, or `stop` (or `also_stop`)
        is set."""
        backoff = self.retry.call_waits.backoff()
        timeout = timeout or (self.settings.connect_timeout, self.settings.read_timeout)
        stops = [event for event in (self.stop, also_stop) if event is not None]
        attempt = 0
        while True:
            attempt += 1
            failure = self._attempt(method, url, what, timeout, read_body, kwargs,
                                    session or self._session)
            if isinstance(failure, tuple):
                return failure
            last_try = not retry or attempt >= self.retry.call_attempts
            too_long = (failure.retry_after or 0.0) > self.retry.max_retry_after
            cut_off = also_stop is not None and also_stop.is_set()  # e.g. polls closed on stop
            if last_try or too_long or cut_off:
                raise failure
            delay = backoff.next(failure.retry_after)
            log.warning("api_retry", call=what, attempt=attempt, delay=round(delay, 2),
                        error=failure.message)
            if _wait_or_any_stop(delay, stops):
                raise ApiUnavailable(f"{what}: stopped while waiting to retry ({failure.message})",
                                     status=failure.status)

    def _attempt(
        self, method: str, url: str, what: str, timeout: tuple[float, float], read_body: bool,
        kwargs: dict[str, Any], session: requests.Session,
    ) -> tuple[requests.Response, bytes] | ApiUnavailable:
        """One try: the response, or the retryable failure it amounted to. The token goes only
        to the API's own origin (a source URL may point elsewhere)."""
        use_auth = self._auth if self._same_origin(url) else None
        try:
            response = session.request(method, url, timeout=timeout, auth=use_auth,
                                       verify=self._verify, stream=True,
                                       proxies=self._proxies_for(url), **kwargs)
        except requests.exceptions.SSLError as exc:
            return ApiUnavailable(f"{what}: TLS failure: {self.scrub(exc)}")
        except RETRYABLE_ERRORS as exc:
            return ApiUnavailable(f"{what}: {self.scrub(exc)}")
        except (requests.exceptions.RequestException, OSError) as exc:
            # a bad URL, a missing ca_bundle file: configuration, not worth retrying
            raise ApiError(f"{what}: {self.scrub(exc)}") from None
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            body = self._read_quietly(response)
            return ApiUnavailable(
                f"{what}: server answered {response.status_code}{self._detail(body)}",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if not read_body:
            return response, b""
        try:
            return response, self._read_bounded(response, what)
        except RETRYABLE_ERRORS as exc:
            response.close()
            return ApiUnavailable(f"{what}: answer cut off: {self.scrub(exc)}")

    @staticmethod
    def _read_bounded(response: requests.Response, what: str) -> bytes:
        body = bytearray()
        try:
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_JSON_BYTES:
                    raise ApiProtocolError(f"{what}: answer larger than {MAX_JSON_BYTES} bytes")
        finally:
            response.close()
        return bytes(body)

    def _read_quietly(self, response: requests.Response) -> bytes:
        """A little of an error answer, for its message; errors reading it do not matter."""
        try:
            return response.raw.read(4096, decode_content=True) or b""
        except Exception:  # the body of an error answer is optional detail
            return b""
        finally:
            response.close()

    def scrub(self, value: object, limit: int = 400) -> str:
        """Text safe to show: no API key, no control characters, bounded length."""
        text = redact(str(value), self._secret)
        text = "".join(ch if ch.isprintable() else " " for ch in text)
        return text[:limit]

    def _detail(self, body: bytes) -> str:
        """": <detail>" from an error answer (FastAPI's {"detail": ...}, else the text)."""
        if not body:
            return ""
        text = body.decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "detail" in data:
            detail = data["detail"]
            text = detail if isinstance(detail, str) else json.dumps(detail)
        return ": " + self.scrub(text, 300) if text.strip() else ""

    def check(self, response: requests.Response, body: bytes, what: str) -> None:
        """Raise the error a non-2xx status means."""
        code = response.status_code
        if 200 <= code < 300:
            return
        message = f"{what}: server answered {code}{self._detail(body)}"
        if code in (401, 403):
            hint = "" if self._auth else " (no api_key is set)"
            raise ApiAuthError(message + hint, status=code)
        if code == 404:
            raise ApiNotFound(message, status=code)
        if code == 409:
            raise ApiConflict(message, status=code)
        raise ApiProtocolError(message, status=code)

    def parse_json(self, response: requests.Response, body: bytes, what: str) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            start = self.scrub(body[:80].decode("utf-8", errors="replace"), 80)
            raise ApiProtocolError(
                f"{what}: answer is not JSON ({kind}, starts {start!r})",
                status=response.status_code) from None

    def _json_object(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        response, body = self.send(method, url, what, **kwargs)
        self.check(response, body, what)
        data = self.parse_json(response, body, what)
        if not isinstance(data, dict):
            raise ApiProtocolError(f"{what}: answer is not a JSON object",
                                   status=response.status_code)
        return data

    # ----- the API ----------------------------------------------------------------------------

    def poll(self, content_types: Sequence[str], wait: float = 0.0) -> Job | None:
        """Claim at most one job. Always `max_jobs=1`: MoRAG claims as many as asked but returns
        only the first, orphaning the rest. `wait` asks a long-polling server to hold the request;
        servers without long polling ignore it."""
        if not content_types:
            raise ValueError("poll needs at least one content type")
        params: dict[str, str | int] = {
            "worker_id": self.settings.worker_id,
            "content_types": ",".join(content_types),
            "max_jobs": 1,
        }
        if wait > 0:
            params["wait"] = f"{wait:g}"
        timeout = (self.settings.connect_timeout, self.settings.read_timeout + max(wait, 0.0))
        if self._poll_sockets.closed.is_set():
            raise ApiUnavailable("poll: polling was closed (the agent is stopping)")
        response, body = self.send("GET", self.api_url("/poll"), "poll", params=params,
                                   timeout=timeout, session=self._poll_session,
                                   also_stop=self._poll_sockets.closed)
        if response.status_code == 204:
            return None
        self.check(response, body, "poll")
        data = self.parse_json(response, body, "poll")
        try:
            return Job.from_poll(data)
        except ApiProtocolError as exc:
            exc.claimed_job_id = Job.claimed_id(data)
            raise

    def download(
        self,
        job: Job,
        dest_dir: Path,
        max_bytes: int | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> DownloadedFile:
        """Stream the job's source into `dest_dir` (see `SourceDownload` for the guarantees)."""
        url = self.resolve(job.source_file_url)
        what = f"download {job.job_id}"

        def fetch(offset: int) -> requests.Response:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            response, _ = self.send("GET", url, what, read_body=False, headers=headers)
            if response.status_code >= 300:
                body = self._read_quietly(response)
                if response.status_code == 403 and b"processing" in body:
                    # MoRAG's "not in processing state": the job is no longer ours
                    raise ApiConflict(f"{what}: server answered 403{self._detail(body)}",
                                      status=403)
                self.check(response, body, what)
            return response

        def pause(resume: int) -> None:
            delay = self.retry.resume_pause(resume)
            if wait_or_stop(delay, self.stop):
                raise ApiUnavailable(f"{what}: stopped while waiting to resume")

        cap = self.settings.max_download_bytes if max_bytes is None else max_bytes
        return SourceDownload(job.job_id, Path(dest_dir), cap, fetch, pause, progress,
                              self.retry.download_resumes).run()

    def submit_result(self, job_id: str, result: JobResult) -> dict[str, Any]:
        """Send the result once. A timeout or connection error raises ApiUnavailable and must be
        followed by `job_status` before any resubmission (MoRAG ingests inside this request).
        `worker_id` lets a leasing server refuse a result from a worker that lost the job;
        MoRAG ignores the parameter."""
        timeout = (self.settings.connect_timeout, self.settings.submit_timeout)
        return self._json_object("PUT", self.job_url(job_id, "result"), f"submit {job_id}",
                                 json=result.to_json(), timeout=timeout, retry=False,
                                 params={"worker_id": self.settings.worker_id})

    def job_status(self, job_id: str) -> dict[str, Any]:
        data = self._json_object("GET", self.job_url(job_id, "status"), f"status {job_id}")
        if not isinstance(data.get("status"), str):
            raise ApiProtocolError(f"status {job_id}: answer has no 'status' string")
        return data

    def held_jobs(self) -> list[Job] | None:
        """The jobs the server has processing by this worker, on servers that can say (the
        reference one); None where the server has no such endpoint (MoRAG answers 404). One
        try: it is asked at start, which must not wait out an outage."""
        what = "held jobs"
        response, body = self.send("GET", self.api_url("/held"), what, retry=False,
                                   params={"worker_id": self.settings.worker_id})
        if response.status_code in (404, 405):
            return None
        self.check(response, body, what)
        data = self.parse_json(response, body, what)
        jobs = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(jobs, list):
            raise ApiProtocolError(f"{what}: answer has no 'jobs' list")
        return [job for item in jobs if (job := Job.from_poll(item)) is not None]

    def renew_lease(self, job_id: str) -> bool:
        """Extend the lease on a server that has leases. False when the job is no longer ours
        (404/409/410) or the server has no lease endpoint (404/405 on MoRAG)."""
        what = f"renew lease {job_id}"
        response, body = self.send("POST", self.job_url(job_id, "lease"), what,
                                   params={"worker_id": self.settings.worker_id})
        if response.status_code in (404, 405, 409, 410):
            return False
        self.check(response, body, what)
        return True

    def test_connection(self) -> ConnectionReport:
        """Tell apart unreachable, TLS failure, auth refused and not-MoRAG without claiming a job
        (see `probe.probe_api` for how)."""
        from morag_fleet.jobs.probe import probe_api

        return probe_api(self)

    def get_once(self, url: str) -> tuple[requests.Response, bytes]:
        """One GET with auth, timeouts and TLS settings, no retries; requests' own exceptions
        pass through (the connection test classifies them)."""
        response = self._session.request(
            "GET", url, timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            auth=self._auth if self._same_origin(url) else None, verify=self._verify,
            stream=True, proxies=self._proxies_for(url))
        return response, self._read_bounded(response, "GET")


def _wait_or_any_stop(delay: float, stops: Sequence[threading.Event]) -> bool:
    """`wait_or_stop` for one or two events; with two it looks at both every tenth of a second
    (only while backing off between retries)."""
    if len(stops) < 2:
        return wait_or_stop(delay, stops[0] if stops else None)
    deadline = time.monotonic() + delay
    while not any(event.is_set() for event in stops):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        stops[0].wait(min(left, 0.1))
    return True


def _tls_verify(settings: AgentSettings) -> bool | str:
    """The configured CA bundle, else the one the environment names the way `requests` reads it,
    else the default store; False only when TLS verification is switched off."""
    if not settings.verify_tls:
        return False
    return (settings.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE") or True)
