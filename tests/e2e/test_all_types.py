"""Every content type through the whole path: reference server -> agent process -> slot process
-> result, with the markdown checked against the layouts MoRAG's chunker understands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from morag_fleet.samples import make_samples, serve_samples
from tests.support.agent_proc import AgentProcess, wait_until
from tests.support.jobserver import running_jobserver

SEGMENT_LINE = re.compile(r"^\[\d{2}:\d{2}(:\d{2})?\] \S", re.MULTILINE)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("all-types")
    sample_dir = base / "samples"
    sample_dir.mkdir()
    with serve_samples(sample_dir) as base_url, \
            running_jobserver(base / "server") as server:
        samples = make_samples(sample_dir, base_url)
        ids = {ctype: server.upload(path, ctype) for ctype, path in samples.items()}
        agent = AgentProcess(
            base, server.url, "all-types-agent", slots=2,
            content_types=("audio", "video", "document", "image", "web", "youtube"),
            converter_options={"web": {"allow_private": True},
                               "youtube": {"allow_private": True}},
        ).start()
        try:
            wait_until(lambda: all(server.status(i)["status"] in ("completed", "failed")
                                   for i in ids.values()), 300, "all six jobs finished")
            results = {ctype: server.result(job_id) for ctype, job_id in ids.items()}
        finally:
            assert agent.stop() == 0
    return results


def ok(converted: dict[str, dict], ctype: str) -> tuple[str, dict]:
    result = converted[ctype]
    assert result["status"] == "completed", result.get("error_message")
    meta = result["metadata"]
    assert meta["content_type"] == ctype
    assert "source_path" not in meta and "remote_job_id" not in meta
    return result["content"], meta


def test_audio_layout(converted: dict[str, dict]) -> None:
    markdown, meta = ok(converted, "audio")
    assert markdown.startswith("# Audio Transcription: ")
    assert "## Metadata" in markdown and "## Detailed Transcript" in markdown
    assert re.search(r"- \*\*Duration\*\*: \d{2}:\d{2}:\d{2}", markdown)
    assert len(SEGMENT_LINE.findall(markdown)) >= 2
    assert "tomatoes" in markdown.lower()
    assert meta["duration"] > 5


def test_video_layout(converted: dict[str, dict]) -> None:
    markdown, meta = ok(converted, "video")
    assert markdown.startswith("# Video Analysis: ")
    assert "## Video Information" in markdown and "## Transcript" in markdown
    assert SEGMENT_LINE.search(markdown)
    assert meta["duration"] > 5


def test_document_layout(converted: dict[str, dict]) -> None:
    markdown, meta = ok(converted, "document")
    assert markdown.startswith("# Document: ")
    assert "## Document Information" in markdown
    assert re.search(r"- \*\*Page Count\*\*: \d+", markdown)
    assert meta["page_count"] >= 1
    assert meta["file_extension"] == "pdf"


def test_image_layout(converted: dict[str, dict]) -> None:
    markdown, _meta = ok(converted, "image")
    assert markdown.startswith("# Image Analysis: ")
    assert "## Image Information" in markdown and "## Text Content (OCR)" in markdown
    assert "48213" in markdown


def test_web_layout(converted: dict[str, dict]) -> None:
    markdown, meta = ok(converted, "web")
    assert markdown.startswith("# ")
    assert meta.get("title")
    assert "cookie" not in markdown.lower()


def test_youtube_layout(converted: dict[str, dict]) -> None:
    markdown, meta = ok(converted, "youtube")
    assert SEGMENT_LINE.search(markdown)
    assert meta["duration"] > 5


def test_sample_files_are_real(tmp_path: Path) -> None:
    """The samples are generated, not canned text: the audio really is speech of that length."""
    samples = make_samples(tmp_path, "http://127.0.0.1:9")
    assert samples["audio"].stat().st_size > 10_000
    assert samples["video"].stat().st_size > 10_000
