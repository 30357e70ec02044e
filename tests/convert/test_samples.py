"""The demo's samples: one per type, each converted by the configured converter."""

from __future__ import annotations

from pathlib import Path

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.registry import build_converter
from morag_fleet.samples import make_samples, serve_samples
from morag_fleet.settings import AgentSettings
from tests.convert.conftest import job_info_for

LAYOUT_START = {
    "audio": "# Audio Transcription: meeting.mp3\n",
    "video": "# Video Analysis: meeting.mp4\n",
    "document": "# Document: report.pdf\n",
    "image": "# Image Analysis: invoice.png\n",
    "web": "# Growing tomatoes on a balcony\n",
    "youtube": "# Video Analysis: meeting\n",
}
EXPECTED_WORDS = {
    "audio": "tomatoes", "video": "southern fence", "document": "herb spiral",
    "image": "48213", "web": "twenty litres", "youtube": "Monday",
}


def test_every_sample_converts(tmp_path: Path, audio_converter: AudioConverter) -> None:
    settings = AgentSettings(converter_options={"web": {"allow_private": True},
                                                "youtube": {"allow_private": True}})
    with serve_samples(tmp_path) as base:
        samples = make_samples(tmp_path, base)
        assert set(samples) == set(LAYOUT_START)
        for content_type, path in samples.items():
            converter = build_converter(content_type, settings)
            if hasattr(converter, "audio"):
                converter.audio = audio_converter
            elif isinstance(converter, AudioConverter):
                converter = audio_converter
            options = settings.converter_options.get(content_type, {})
            result = converter.convert(path, options, job_info_for(path, content_type),
                                       lambda f, m: None)
            assert result.markdown.startswith(LAYOUT_START[content_type]), content_type
            assert EXPECTED_WORDS[content_type].lower() in result.markdown.lower(), content_type
            assert result.metadata["content_type"] == content_type
