"""download() against servers that send hostile names, too much, too little, or drop the line."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from morag_fleet.jobs.errors import ApiConflict, ApiNotFound, ApiUnavailable, DownloadError
from morag_fleet.jobs.models import Job
from morag_fleet.jobs.retry import RetryPolicy, Waits

from .loopback import TOKEN, Req, make_client

JOB_ID = "8e4b2c1d-7f3a-4d5e-9b6c-0a1f2e3d4c5b"
JOB = Job(JOB_ID, f"/api/v1/remote-jobs/{JOB_ID}/download", "audio", {})
PAYLOAD = os.urandom(3 * 1024 * 1024 + 12345)  # several chunks, not a multiple of one
RANGE = re.compile(r"bytes=(\d+)-$")


def octet_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", **(extra or {})}


def serve_file(req: Req, data: bytes = PAYLOAD, disposition: str | None =
               'attachment; filename="talk.mp3"') -> None:
    """What MoRAG's FileResponse does: the whole file, or the asked range as 206."""
    headers = octet_headers({"Content-Disposition": disposition} if disposition else {})
    match = RANGE.match(req.header("Range") or "")
    if match and int(match[1]) < len(data):
        start = int(match[1])
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        req.send(206, data[start:], headers)
    else:
        req.send(200, data, headers)


def truncate(req: Req, data: bytes, cut: int, headers: dict[str, str]) -> None:
    """Announce all of `data`, send `cut` bytes, drop the connection."""
    req.start(200, {"Content-Length": str(len(data)), **headers})
    req.write(data[:cut])
    req.close_after()


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs" / JOB_ID
    folder.mkdir(parents=True)
    return folder


def test_a_good_download_has_name_size_sha256_and_token(serve, job_dir: Path) -> None:
    server = serve(serve_file)
    seen_progress: list[tuple[int, int | None]] = []
    with make_client(server.url) as client:
        got = client.download(JOB, job_dir, progress=lambda n, t: seen_progress.append((n, t)))
    assert got.path == job_dir / "talk.mp3"
    assert got.path.read_bytes() == PAYLOAD
    assert (got.size, got.sha256) == (len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    assert (got.original_name, got.mime_type) == ("talk.mp3", "application/octet-stream")
    assert all_files(job_dir.parent.parent) == [got.path]  # no .part file left behind
    assert server.seen[0].path == JOB.source_file_url
    assert server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert server.seen[0].headers["Accept-Encoding"] == "identity"
    assert seen_progress[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [n for n, _ in seen_progress] == sorted(n for n, _ in seen_progress)


HOSTILE = [
    ('attachment; filename="../../etc/passwd"', "passwd"),
    ('attachment; filename="/etc/cron.d/job.sh"', "job.sh"),
    ('attachment; filename="C:\\\\Windows\\\\evil.exe"', "evil.exe"),
    ('attachment; filename="..\\\\..\\\\x.pdf"', "x.pdf"),
    ('attachment; filename="a\x00b.mp3"', None),  # a NUL in a header: name or fallback, safe
    ("attachment; filename*=utf-8''..%2F..%2Fescape.mp3", "escape.mp3"),
    ("attachment; filename*=utf-8''%2Fetc%2Fshadow", "shadow"),
    ("attachment; filename*=utf-8''%00%2E%2E%2Fnul.wav", "_nul.wav"),  # NUL is a DOS device
    ("attachment; filename*=x-mac-bogus''caf%E9%2F..%2Fz.pdf", "z.pdf"),
    ('attachment; filename="safe.mp3"; filename*=utf-8\'\'..%2F..%2Fwins.mp3', "wins.mp3"),
    ('attachment; filename="' + "A" * 4096 + '.mp3"', None),
    ('attachment; filename="CON.mp3"', "_CON.mp3"),
    ('attachment; filename=".."', f"{JOB_ID}"),
    ('attachment; filename=".htaccess"', "htaccess"),
    ("attachment; filename=\"\u202egnp.exe\"", None),
    ("inline", f"{JOB_ID}"),
    (None, f"{JOB_ID}"),
]


@pytest.mark.parametrize(("disposition", "expected"), HOSTILE)
def test_hostile_names_stay_inside_the_job_dir(serve, job_dir: Path, disposition: str | None,
                                               expected: str | None) -> None:
    data = b"%PDF-1.4 tiny"

    def handle(req: Req) -> None:
        headers = octet_headers()
        if disposition is not None:
            headers["Content-Disposition"] = disposition
        raw_headers = dict(headers)
        # written as raw bytes: the header value may hold a NUL or 4 KB of name
        req.handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for name, value in raw_headers.items():
            req.handler.wfile.write(f"{name}: ".encode() + value.encode("latin-1", "replace")
                                    + b"\r\n")
        req.handler.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode())
        req.handler.wfile.write(data)

    server = serve(handle)
    with make_client(server.url) as client:
        got = client.download(JOB, job_dir)
    root = job_dir.parent.parent
    assert all_files(root) == [got.path]
    assert got.path.parent == job_dir and got.path.read_bytes() == data
    name = got.path.name
    assert not name.startswith(".") and "\x00" not in name and "/" not in name
    assert "\\" not in name and len(name.encode()) <= 200
    if expected is not None:
        assert name == expected
    if disposition and "A" * 4096 in disposition:
        assert name.endswith(".mp3") and name.startswith("AAAA")


def test_an_announced_oversize_is_refused_before_reading(serve, job_dir: Path) -> None:
    big = 50 * 1024 * 1024

    def handle(req: Req) -> None:
        req.start(200, octet_headers({"Content-Length": str(big)}))
        chunk = b"\0" * (1024 * 1024)
        for _ in range(50):
            req.write(chunk)

    server = serve(handle)
    with make_client(server.url) as client, pytest.raises(DownloadError, match="over the cap"):
        client.download(JOB, job_dir, max_bytes=1024 * 1024)
    assert all_files(job_dir) == []


def test_an_unannounced_oversize_is_cut_off_while_streaming(serve, job_dir: Path) -> None:
    """No Content-Length (chunked): the cap is checked chunk by chunk and the stream abandoned."""
    sent: list[int] = []

    def handle(req: Req) -> None:
        req.start(200, octet_headers({"Transfer-Encoding": "chunked"}))
        chunk = b"\1" * (256 * 1024)
        try:
            for _ in range(1024):  # 256 MiB if nobody stops it
                req.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            req.write(b"0\r\n\r\n")
        finally:
            sent.append(req.bytes_sent)

    server = serve(handle)
    with make_client(server.url) as client, pytest.raises(DownloadError, match="exceeds the cap"):
        client.download(JOB, job_dir, max_bytes=2 * 1024 * 1024)
    assert all_files(job_dir) == []
    deadline = time.monotonic() + 20  # the server notices the hang-up on its next write
    while not sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sent and sent[0] < 128 * 1024 * 1024  # abandoned early, not read to the end


def test_close_delimited_oversize_is_cut_off_too(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        req.handler.protocol_version = "HTTP/1.0"
        req.start(200, octet_headers())
        for _ in range(64):
            req.write(b"\2" * (1024 * 1024))
        req.close_after()

    server = serve(handle)
    with make_client(server.url) as client, pytest.raises(DownloadError, match="exceeds the cap"):
        client.download(JOB, job_dir, max_bytes=3 * 1024 * 1024)
    assert all_files(job_dir) == []


def test_truncation_without_range_support_fails_and_leaves_nothing(serve, job_dir: Path) -> None:
    server = serve(lambda req: truncate(req, PAYLOAD, 1000, octet_headers()))
    with make_client(server.url) as client, pytest.raises(DownloadError, match="truncated"):
        client.download(JOB, job_dir)
    assert all_files(job_dir) == []
    assert len(server.seen) == 1 + 3  # the first try and three resumes


def range_offset(seen_headers: dict[str, str]) -> int:
    match = RANGE.match(seen_headers.get("Range", ""))
    assert match, f"no Range in {seen_headers}"
    return int(match[1])


def test_truncation_is_resumed_with_range(serve, job_dir: Path) -> None:
    cut = 2 * 1024 * 1024 + 777

    def handle(req: Req) -> None:
        if req.index == 0:
            truncate(req, PAYLOAD, cut, octet_headers(
                {"Content-Disposition": 'attachment; filename="talk.mp3"'}))
        else:
            serve_file(req)

    server = serve(handle)
    with make_client(server.url) as client:
        got = client.download(JOB, job_dir)
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest() and got.size == len(PAYLOAD)
    assert got.path.read_bytes() == PAYLOAD
    assert "Range" not in server.seen[0].headers
    # resumed from what reached the disk: whole chunks, never more than was sent
    assert 0 < range_offset(server.seen[1].headers) <= cut
    assert len(server.seen) == 2


def test_several_drops_are_each_resumed(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        match = RANGE.match(req.header("Range") or "")
        start = int(match[1]) if match else 0
        end = min(len(PAYLOAD), start + 1_500_000)
        headers = octet_headers({"Content-Length": str(len(PAYLOAD) - start)})
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
        req.start(206 if start else 200, headers)
        req.write(PAYLOAD[start:end])
        req.close_after()

    server = serve(handle)
    policy = RetryPolicy(call_attempts=3, call_waits=Waits(0.01, 0.02), download_resumes=10)
    with make_client(server.url, retry=policy) as client:
        got = client.download(JOB, job_dir)
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert len(server.seen) >= 3  # 3 MiB in 1.5 MB pieces
    offsets = [range_offset(seen.headers) for seen in server.seen[1:]]
    assert offsets == sorted(offsets) and offsets[0] > 0


def test_a_server_ignoring_range_restarts_from_zero(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        if req.index == 0:
            truncate(req, PAYLOAD, 2_000_000, octet_headers())
        else:
            req.send(200, PAYLOAD, octet_headers())  # Range ignored: the whole file again

    server = serve(handle)
    with make_client(server.url) as client:
        got = client.download(JOB, job_dir)
    assert got.path.read_bytes() == PAYLOAD and got.size == len(PAYLOAD)
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert 0 < range_offset(server.seen[1].headers) <= 2_000_000
    assert len(server.seen) == 2


def test_a_206_that_does_not_continue_restarts_from_zero(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        if req.index == 0:
            truncate(req, PAYLOAD, 1_500_000, octet_headers())
        elif req.index == 1:  # asked for a resume, answers from 0: must not be appended
            req.send(206, PAYLOAD[:1000], octet_headers(
                {"Content-Range": f"bytes 0-999/{len(PAYLOAD)}"}))
        else:
            serve_file(req)

    server = serve(handle)
    with make_client(server.url) as client:
        got = client.download(JOB, job_dir)
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert range_offset(server.seen[1].headers) > 0
    assert "Range" not in server.seen[2].headers


def test_a_source_that_changed_size_restarts_from_zero(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        if req.index == 0:
            truncate(req, PAYLOAD, 1_500_000, octet_headers())
        elif req.index == 1:  # continues where asked, but the file is now 100 bytes longer
            start = range_offset(req.seen.headers)
            req.send(206, PAYLOAD[start:], octet_headers(
                {"Content-Range": f"bytes {start}-{len(PAYLOAD) + 99}/{len(PAYLOAD) + 100}"}))
        else:
            serve_file(req)

    server = serve(handle)
    with make_client(server.url) as client:
        got = client.download(JOB, job_dir)
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert len(server.seen) == 3 and "Range" not in server.seen[2].headers


def test_length_mismatch_is_detected(serve, job_dir: Path) -> None:
    """Content-Length says 1000, 400 arrive, and a Range retry gets the same short body."""
    def handle(req: Req) -> None:
        req.start(200, octet_headers({"Content-Length": "1000"}))
        req.write(b"x" * 400)
        req.close_after()

    server = serve(handle)
    with make_client(server.url) as client, pytest.raises(DownloadError) as caught:
        client.download(JOB, job_dir)
    assert "400" in str(caught.value) or "truncated" in str(caught.value)
    assert all_files(job_dir) == []


def test_a_broken_chunked_body_is_detected(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        req.start(200, octet_headers({"Transfer-Encoding": "chunked"}))
        req.write(b"10000\r\n" + b"y" * 3000)  # promises 64 KiB, sends 3000 bytes, hangs up
        req.close_after()

    server = serve(handle)
    with make_client(server.url) as client, pytest.raises(DownloadError, match="truncated"):
        client.download(JOB, job_dir)
    assert all_files(job_dir) == []


def test_a_stalled_body_times_out_and_resumes(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        if req.index == 0:
            req.start(200, octet_headers({"Content-Length": str(len(PAYLOAD))}))
            req.write(PAYLOAD[:1_500_000])
            time.sleep(3)
            req.close_after()
        else:
            serve_file(req)

    server = serve(handle)
    with make_client(server.url, read_timeout=0.5) as client:
        got = client.download(JOB, job_dir)
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert 0 < range_offset(server.seen[1].headers) <= 1_500_000


def test_bad_content_length_is_refused(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        req.handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n"
                                b"Connection: close\r\n\r\nhello")
        req.close_after()

    server = serve(handle)
    with make_client(server.url) as client, pytest.raises(DownloadError, match="Content-Length"):
        client.download(JOB, job_dir)
    assert all_files(job_dir) == []


def test_unknown_job_and_not_processing_are_told_apart(serve, job_dir: Path) -> None:
    def handle(req: Req) -> None:
        if "missing" in req.path:
            req.json(404, {"detail": "Job missing not found"})
        else:
            req.json(403, {"detail": f"Job {JOB_ID} is not in processing state"})

    server = serve(handle)
    with make_client(server.url) as client:
        with pytest.raises(ApiNotFound):
            client.download(Job("missing", "/api/v1/remote-jobs/missing/download", "audio"),
                            job_dir)
        with pytest.raises(ApiConflict, match="processing"):
            client.download(JOB, job_dir)
    assert all_files(job_dir) == []


def test_api_down_during_download_is_unavailable(refused_url, job_dir: Path) -> None:
    with make_client(refused_url) as client, pytest.raises(ApiUnavailable):
        client.download(JOB, job_dir)
    assert all_files(job_dir) == []


def test_token_is_not_sent_to_another_origin(serve, job_dir: Path) -> None:
    storage = serve(serve_file)
    api = serve(lambda req: req.json(500, {}))
    job = Job(JOB_ID, f"{storage.url}/bucket/{JOB_ID}", "audio")
    with make_client(api.url) as client:
        got = client.download(job, job_dir)
    assert got.size == len(PAYLOAD)
    assert "Authorization" not in storage.seen[0].headers
    assert api.seen == []


def test_a_relative_source_url_follows_a_base_path_prefix(serve, job_dir: Path) -> None:
    server = serve(serve_file)
    with make_client(server.url + "/morag") as client:
        client.download(JOB, job_dir)
    assert server.seen[0].path == "/morag" + JOB.source_file_url


def test_the_job_dir_must_exist(serve, tmp_path: Path) -> None:
    server = serve(serve_file)
    with make_client(server.url) as client, pytest.raises(DownloadError, match="directory"):
        client.download(JOB, tmp_path / "absent")
    assert server.seen == []
