"""Converter selection, the capability report and option merging."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.morag_backend import MoragConverter
from morag_fleet.convert.registry import (
    build_converter,
    capabilities,
    capabilities_in_child,
    merged_options,
)
from morag_fleet.settings import CONTENT_TYPES, AgentSettings
from tests.convert.conftest import job_info_for


def test_every_type_works_on_this_host() -> None:
    report = capabilities(AgentSettings())
    assert set(report) == set(CONTENT_TYPES)
    assert all(a.ok for a in report.values()), report


def test_reasons_when_something_is_missing(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = AgentSettings(
        converters={"youtube": "morag", "web": "nonexistent"},
        converter_options={"audio": {"model_dir": str(tmp_path)},
                           "image": {"ocr_language": "klingon"}},
    )
    report = capabilities(settings)
    assert not report["audio"].ok and "model.bin" in report["audio"].reason
    assert not report["image"].ok and "klingon" in report["image"].reason
    assert not report["youtube"].ok and "morag_youtube" in report["youtube"].reason
    assert not report["web"].ok and "nonexistent" in report["web"].reason
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg, no tesseract
    report = capabilities(AgentSettings())
    assert "ffmpeg" in report["audio"].reason and "ffmpeg" in report["video"].reason
    assert "tesseract" in report["image"].reason and "tesseract" in report["document"].reason
    assert report["web"].ok


def test_the_agent_asks_a_child_and_gets_the_same_answer() -> None:
    settings = AgentSettings(converter_options={"image": {"ocr_language": "klingon"}})
    assert capabilities_in_child(settings) == capabilities(settings)


def test_a_converter_that_crashes_on_import_takes_only_the_child() -> None:
    settings = AgentSettings(content_types=["document", "web"],
                             converters={"web": "tests.support.crashing_plugin:Never"})
    report = capabilities_in_child(settings)
    assert report["document"].ok
    assert not report["web"].ok and "crashed" in report["web"].reason


def test_backend_selection() -> None:
    settings = AgentSettings(converters={"image": "rapidocr", "document": "text",
                                         "audio": "morag"})
    assert build_converter("image", settings).name == "rapidocr"
    assert build_converter("document", settings).name == "text"
    assert isinstance(build_converter("audio", settings), MoragConverter)
    assert build_converter("video", settings).name == "ffmpeg+faster-whisper"
    with pytest.raises(KeyError, match=r"known: default, tesseract, rapidocr, morag"):
        build_converter("image", AgentSettings(converters={"image": "easyocr"}))


def test_plugin_syntax() -> None:
    settings = AgentSettings(
        converters={"document": "tests.support.scripted_converters:ScriptedConverter"})
    assert build_converter("document", settings).name == "scripted"


def test_job_cannot_unlock_operator_settings() -> None:
    settings = AgentSettings(converter_options={"web": {"max_bytes": 1000},
                                                "audio": {"beam_size": 5}})
    web = merged_options("web", settings, {"allow_private": True, "max_bytes": 10**9,
                                           "language": "de", "metadata": {"x": 1}})
    assert web == {"max_bytes": 1000, "language": "de"}
    audio = merged_options("audio", settings, {"beam_size": 1, "model": "tiny.en",
                                               "model_dir": "/etc"})
    assert audio == {"beam_size": 1, "model": "tiny.en"}


def test_morag_backend_delegates_when_installed(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """MoRAG's packages cannot be installed here, so a minimal package with MoRAG's processor
    shape (async `process(path)`, result with `transcript` and `metadata`) stands in for it."""
    package = tmp_path / "morag_audio"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "processor.py").write_text(
        "from dataclasses import dataclass, field\n"
        "@dataclass\n"
        "class Result:\n"
        "    transcript: str\n"
        "    metadata: dict = field(default_factory=dict)\n"
        "    success: bool = True\n"
        "class AudioProcessor:\n"
        "    async def process(self, path):\n"
        "        if path.endswith('bad.wav'):\n"
        "            return Result('', {}, success=False)\n"
        "        return Result('[00:00] hello from morag ' + path.rsplit('/', 1)[1],\n"
        "                      {'num_speakers': 2, 'source_path': path, 'big': [1, 2]})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    converter = MoragConverter("audio")
    assert converter.available().ok
    source = tmp_path / "talk.wav"
    source.write_bytes(b"RIFF")
    result = converter.convert(source, {}, job_info_for(source, "audio"), lambda f, m: None)
    assert result.markdown == "[00:00] hello from morag talk.wav"
    assert result.metadata["num_speakers"] == 2 and result.metadata["content_type"] == "audio"
    assert "source_path" not in result.metadata and "big" not in result.metadata
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    with pytest.raises(ConversionError, match=r"MoRAG failed"):
        converter.convert(bad, {}, job_info_for(bad, "audio"), lambda f, m: None)
    sys.modules.pop("morag_audio.processor", None)
    sys.modules.pop("morag_audio", None)


def test_morag_backend_says_why_not() -> None:
    availability = MoragConverter("document").available()
    assert not availability.ok and "morag_document" in availability.reason
