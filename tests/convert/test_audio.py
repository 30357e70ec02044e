"""Audio: espeak-ng speech with known sentences and gaps through ffmpeg + faster-whisper."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from morag_fleet.convert.audio import AudioConverter, audio_markdown, transcript_lines
from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.whisper import (
    WHISPER_SAMPLE_RATE,
    Segment,
    Transcript,
    quiet_cut,
    resolve_model_dir,
)
from morag_fleet.samples.generate import Speech, encode_audio, speech_with_gaps
from tests.convert.conftest import Progress, job_info_for
from tests.support.media import wer

SEGMENT_LINE = re.compile(r"^\[(\d{2}):(\d{2})\] \S")


def assert_starts_match(known: tuple[float, ...], found: list[float]) -> None:
    assert found == sorted(found), f"segments out of order: {found}"
    for start in known:
        nearest = min(found, key=lambda s: abs(s - start))
        assert abs(nearest - start) <= 1.0, f"no segment starts within 1 s of {start}: {found}"


def test_transcript_of_known_speech(audio_converter: AudioConverter, speech: Speech,
                                    speech_mp3: Path, progress: Progress) -> None:
    result = audio_converter.convert(speech_mp3, {}, job_info_for(speech_mp3, "audio",
                                                                  "audio/mpeg"), progress)
    lines = result.markdown.split("## Detailed Transcript\n\n", 1)[1].strip().splitlines()
    assert all(SEGMENT_LINE.match(line) for line in lines), lines
    assert wer(" ".join(speech.sentences), " ".join(lines)) < 0.3
    starts = [int(m.group(1)) * 60 + int(m.group(2)) for m in map(SEGMENT_LINE.match, lines)]
    # the markdown shows whole seconds; the true starts are checked on the metadata-free path
    assert starts == sorted(starts) and len(starts) >= len(speech.sentences) - 1
    assert result.markdown.startswith("# Audio Transcription: speech.mp3\n\n## Metadata\n")
    meta = result.metadata
    assert meta["content_type"] == "audio" and meta["file_name"] == "speech.mp3"
    assert meta["mime_type"] == "audio/mpeg" and meta["checksum"] == "0" * 64
    assert meta["language"] == "en" and meta["model"] == "tiny.en"
    assert abs(meta["duration"] - speech.duration) < 0.3
    assert meta["segment_count"] == len(lines)
    assert "source_path" not in meta and "remote_job_id" not in meta
    assert progress.fractions == sorted(progress.fractions) and progress.fractions[-1] > 0.8


def test_segment_starts_within_a_second(audio_converter: AudioConverter, speech: Speech) -> None:
    transcript = audio_converter.transcribe(speech.path, {}, lambda f, m: None)
    assert_starts_match(speech.starts, [seg.start for seg in transcript.segments])


def test_windows_keep_words_and_offsets(audio_converter: AudioConverter, tmp_path: Path) -> None:
    """Speech longer than one window (30 s, the minimum) is transcribed window by window with
    the right absolute times and nothing lost at the cut."""
    sentences = (
        "Tomatoes need six hours of sunlight every single day.",
        "The beans climb up the wooden poles near the fence.",
        "Rain water from the roof fills the big green tank.",
        "Children planted sunflowers along the northern wall.",
        "The compost heap is turned over every second week.",
        "Volunteers bring cake and coffee to every meeting.",
    )
    long_speech = speech_with_gaps(sentences, tmp_path / "long.wav", gap=4.0)
    assert long_speech.duration > 40
    transcript = audio_converter.transcribe(long_speech.path, {"window_seconds": 30},
                                            lambda f, m: None)
    assert wer(" ".join(sentences), " ".join(s.text for s in transcript.segments)) < 0.3
    assert_starts_match(long_speech.starts, [seg.start for seg in transcript.segments])


def test_quiet_cut_lands_in_the_silence() -> None:
    rate = WHISPER_SAMPLE_RATE
    loud = np.random.default_rng(1).uniform(-0.5, 0.5, rate * 40).astype(np.float32)
    loud[rate * 37: rate * 37 + rate // 2] = 0.0  # 0.5 s of silence at 37 s
    cut = quiet_cut(loud)
    assert rate * 37 <= cut <= rate * 37 + rate // 2


def test_word_timestamps_and_language_options(audio_converter: AudioConverter,
                                              speech: Speech) -> None:
    transcript = audio_converter.transcribe(
        speech.path, {"word_timestamps": False, "language": "en", "beam_size": 1,
                      "vad_filter": True}, lambda f, m: None)
    assert transcript.language == "en"
    assert wer(" ".join(speech.sentences), " ".join(s.text for s in transcript.segments)) < 0.3
    starts = [seg.start for seg in transcript.segments]
    assert starts == sorted(starts)


def test_job_model_option_resolves_or_falls_back(tmp_path: Path) -> None:
    default = resolve_model_dir({})
    assert (default / "model.bin").is_file()
    assert resolve_model_dir({"model": "tiny.en"}) == default
    assert resolve_model_dir({"model": "large-v3"}) == default  # not on this host: fallback
    assert resolve_model_dir({"model": str(default)}) == default
    models = tmp_path / "models"
    (models / "custom").mkdir(parents=True)
    (models / "custom" / "model.bin").write_bytes(b"x")
    assert resolve_model_dir({"model": "custom", "models_dir": str(models)}) == models / "custom"


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    converter = AudioConverter({"model_dir": str(tmp_path)})
    availability = converter.available()
    assert not availability.ok and "model.bin" in availability.reason
    (tmp_path / "in.wav").write_bytes(b"RIFF")
    with pytest.raises(ConversionError):
        converter.convert(tmp_path / "in.wav", {"model_dir": str(tmp_path)},
                          job_info_for(tmp_path / "in.wav", "audio"), lambda f, m: None)


def test_not_audio_is_a_conversion_error(audio_converter: AudioConverter, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp3"
    bogus.write_text("this is not audio at all\n" * 20)
    with pytest.raises(ConversionError, match=r"notes.mp3"):
        audio_converter.convert(bogus, {}, job_info_for(bogus, "audio"), lambda f, m: None)


def test_audio_only_container_formats(audio_converter: AudioConverter, speech: Speech,
                                      tmp_path: Path) -> None:
    ogg = encode_audio(speech.path, tmp_path / "speech.ogg")
    result = audio_converter.convert(ogg, {}, job_info_for(ogg, "audio"), lambda f, m: None)
    assert wer(" ".join(speech.sentences), result.markdown.split("Transcript\n", 1)[1]) < 0.3
    assert result.metadata["file_extension"] == "ogg"


def test_long_media_uses_hour_timestamps_and_topics() -> None:
    transcript = Transcript([Segment(5, 9, "opening words"), Segment(3700, 3705, "late words")],
                            language="en", duration=3800, model="tiny.en")
    lines = transcript_lines(transcript, chapters=[(0, "Intro"), (3650, "Finale")])
    assert lines == ["# Intro [0]", "", "[00:00:05] opening words", "", "# Finale [3650]", "",
                     "[01:01:40] late words"]
    markdown = audio_markdown("talk.mp3", transcript)
    assert "- **Duration**: 01:03:20" in markdown


def test_video_without_audio_sent_as_audio(audio_converter: AudioConverter,
                                           tmp_path: Path) -> None:
    from morag_fleet.samples.generate import silent_video

    mp4 = silent_video(tmp_path / "mute.mp4", seconds=1.0)
    with pytest.raises(ConversionError, match=r"mute\.mp4 has no audio track"):
        audio_converter.convert(mp4, {}, job_info_for(mp4, "audio"), lambda f, m: None)
