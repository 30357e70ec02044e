"""Content-Disposition decoding and file-name sanitising, on the names servers really send and on
hostile ones."""

from __future__ import annotations

import pytest

from morag_fleet.jobs.filenames import (
    MAX_NAME_BYTES,
    extension_for_type,
    filename_from_disposition,
    printable_name,
    sanitize_filename,
)


@pytest.mark.parametrize(("header", "expected"), [
    ('attachment; filename="talk.mp3"', "talk.mp3"),
    ("attachment; filename=plain.txt", "plain.txt"),
    # Starlette's FileResponse for non-ASCII names
    ("attachment; filename*=utf-8''Vortrag%20%C3%BCber%20RAG.mp3", "Vortrag über RAG.mp3"),
    # RFC 6266: filename* wins, in either order
    ("attachment; filename=\"fallback.mp3\"; filename*=UTF-8''r%C3%A9el.mp3", "réel.mp3"),
    ("attachment; filename*=UTF-8''r%C3%A9el.mp3; filename=\"fallback.mp3\"", "réel.mp3"),
    ("attachment; filename*=iso-8859-1''caf%E9.pdf", "café.pdf"),
    ("attachment; filename*=utf-8''..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
    ('attachment; filename*0="long"; filename*1="name.txt"', "longname.txt"),
    ("inline", None),
    ("", None),
    (None, None),
])
def test_disposition_values_decode(header: str | None, expected: str | None) -> None:
    assert filename_from_disposition(header) == expected


def test_unknown_charset_or_bad_utf8_decodes_with_replacement_not_an_error() -> None:
    assert filename_from_disposition("attachment; filename*=x-bogus''a%FFb.pdf").endswith("b.pdf")
    assert filename_from_disposition("attachment; filename*=utf-8''%FF%FE.txt").endswith(".txt")


@pytest.mark.parametrize(("raw", "expected"), [
    ("talk.mp3", "talk.mp3"),
    ("../../etc/passwd", "passwd"),
    ("/etc/cron.d/evil.sh", "evil.sh"),
    ("C:\\Windows\\System32\\evil.exe", "evil.exe"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("a\x00b.pdf", "ab.pdf"),
    ("line\nbreak\r.txt", "linebreak.txt"),
    ("evil\u202egpj.exe", "evilgpj.exe"),  # right-to-left override removed
    (".bashrc", "bashrc"),
    ("...hidden.docx", "hidden.docx"),
    ("CON.txt", "_CON.txt"),
    ("lpt1", "_lpt1"),
    ("-rf.mp3", "_rf.mp3"),
    ('what?<>:"|*.pdf', "what_______.pdf"),
    ("trailing.pdf. . ", "trailing.pdf"),
    ("Vortrag über RAG.mp3", "Vortrag über RAG.mp3"),
])
def test_sanitize_keeps_one_safe_component(raw: str, expected: str) -> None:
    assert sanitize_filename(raw, "job-1") == expected


@pytest.mark.parametrize("raw", [None, "", ".", "..", "...", "/", "a/b/", "\x00\x01", " "])
def test_nothing_usable_falls_back_to_the_job_id(raw: str | None) -> None:
    assert sanitize_filename(raw, "4f1c-job", "application/pdf") == "4f1c-job.pdf"
    assert sanitize_filename(raw, "4f1c-job", "application/octet-stream") == "4f1c-job"


def test_long_names_are_cut_by_bytes_keeping_the_extension() -> None:
    for raw in ("x" * 4096 + ".pdf", "é" * 3000 + ".docx", "名" * 2000 + ".mp3"):
        name = sanitize_filename(raw, "job")
        assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
        assert name.endswith(raw.rsplit(".", 1)[1]) and name.rsplit(".", 1)[0]
        name.encode("utf-8").decode("utf-8")  # cut on a character boundary


def test_an_implausible_extension_is_not_kept_as_one() -> None:
    name = sanitize_filename("report." + "x" * 100, "job", "application/pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_NAME_BYTES


def test_extension_for_type_ignores_octet_stream_and_parameters() -> None:
    assert extension_for_type("application/pdf; charset=binary") == ".pdf"
    assert extension_for_type("application/octet-stream") == ""
    assert extension_for_type(None) == ""
    assert extension_for_type("x-unknown/thing") == ""


def test_printable_name_removes_control_characters() -> None:
    assert printable_name("../a\x00b\n.txt") == "../ab.txt"
    assert len(printable_name("y" * 5000)) == 512
    assert printable_name(None) == ""
