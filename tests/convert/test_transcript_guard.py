"""The transcript guard: real whisper decoding that drops every segment of clear speech fails
the job with a reason; silence, a tone and music-like notes still succeed with no speech."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import pytest

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.media import WHISPER_SAMPLE_RATE, extract_wav
from morag_fleet.convert.speechcheck import (
    MIN_SPEECH_SECONDS,
    MIN_WORDS_PER_SPEECH_SECOND,
    SpeechCheck,
    check_transcript,
    looks_suspicious,
    speech_seconds,
    word_count,
)
from morag_fleet.convert.whisper import Transcript, WhisperOptions
from morag_fleet.samples.generate import Speech
from tests.convert.conftest import job_info_for

# Real faster-whisper settings under which every decoded segment counts as "no speech" and is
# dropped: what a decoder that returns nothing looks like from the outside.
DROP_ALL = {"no_speech_threshold": 0.0, "log_prob_threshold": 0.0}
REASON = re.compile(r"whisper returned (\d+) words for speech\.mp3, but voice activity "
                    r"detection found (\d+\.\d) s of speech")


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(WHISPER_SAMPLE_RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def signal(kind: str, seconds: float = 12.0) -> np.ndarray:
    """Silence, a steady 440 Hz tone, or one plucked note (with overtones) per second."""
    t = np.arange(int(seconds * WHISPER_SAMPLE_RATE)) / WHISPER_SAMPLE_RATE
    if kind == "silence":
        return np.zeros_like(t)
    if kind == "tone":
        return 0.4 * np.sin(2 * np.pi * 440 * t)
    notes = np.array([261.63, 329.63, 392.0, 523.25, 440.0, 349.23])
    freq = notes[t.astype(int) % len(notes)]
    decay = np.exp(-3 * (t % 1.0))
    return 0.3 * decay * sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))


def test_speech_decoded_to_nothing_fails_with_the_reason(
        audio_converter: AudioConverter, speech: Speech, speech_mp3: Path) -> None:
    with pytest.raises(ConversionError) as failure:
        audio_converter.convert(speech_mp3, DROP_ALL, job_info_for(speech_mp3, "audio"),
                                lambda f, m: None)
    message = str(failure.value)
    found = REASON.search(message)
    assert found, message
    words, seconds = int(found.group(1)), float(found.group(2))
    assert words == 0
    assert speech.duration * 0.5 < seconds <= speech.duration, message
    for hint in ("cpu_threads=", "OMP_NUM_THREADS", "model (tiny.en)", "compute_type (int8"):
        assert hint in message, message
    assert str(speech_mp3.parent) not in message  # no local paths travel to MoRAG


@pytest.mark.parametrize("kind", ["silence", "tone", "music"])
def test_no_speech_still_succeeds(audio_converter: AudioConverter, tmp_path: Path,
                                  kind: str) -> None:
    """Under the same settings, audio without speech passes the guard: VAD runs (the transcript
    is empty) and hears nothing."""
    wav = write_wav(tmp_path / f"{kind}.wav", signal(kind))
    result = audio_converter.convert(wav, DROP_ALL, job_info_for(wav, "audio"), lambda f, m: None)
    assert "_No speech detected._" in result.markdown
    assert speech_seconds(wav, 600) < MIN_SPEECH_SECONDS


@pytest.mark.parametrize("kind", ["silence", "music"])
def test_no_speech_with_default_settings_reads_as_none(audio_converter: AudioConverter,
                                                       tmp_path: Path, kind: str) -> None:
    """Whisper invents a word or two on silence; VAD hears no voice, so they are dropped."""
    wav = write_wav(tmp_path / f"{kind}.wav", signal(kind))
    result = audio_converter.convert(wav, {}, job_info_for(wav, "audio"), lambda f, m: None)
    assert "_No speech detected._" in result.markdown
    assert result.metadata.get("segment_count", 0) == 0


def test_normal_speech_passes_without_vad(audio_converter: AudioConverter, speech: Speech,
                                          tmp_path: Path) -> None:
    transcript = audio_converter.transcribe(speech.path, {}, lambda f, m: None)
    assert not looks_suspicious(word_count(transcript), transcript.duration)
    wav = extract_wav(speech.path, tmp_path / "speech16.wav")
    assert check_transcript(wav, transcript, WhisperOptions.from_options({})) is None


def test_threshold_sits_far_below_real_speech(speech: Speech, tmp_path: Path) -> None:
    """The known sentences hold several times more words per VAD speech second than the line
    the guard draws, so a normal transcript is never called implausible."""
    wav = extract_wav(speech.path, tmp_path / "speech16.wav")
    seconds = speech_seconds(wav, 600)
    words = len(" ".join(speech.sentences).split())
    assert words / seconds > 3 * MIN_WORDS_PER_SPEECH_SECOND
    assert not SpeechCheck(words, seconds).contradicts
    assert SpeechCheck(0, seconds).contradicts
    assert not SpeechCheck(0, MIN_SPEECH_SECONDS / 2).contradicts


def test_short_or_wordy_transcripts_skip_vad() -> None:
    assert not looks_suspicious(0, MIN_SPEECH_SECONDS / 2)
    assert looks_suspicious(0, 10.0)
    assert not looks_suspicious(10, 10.0)
    assert word_count(Transcript()) == 0
