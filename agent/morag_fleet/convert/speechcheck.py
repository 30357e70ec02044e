"""The guard against publishing a transcript that contradicts its audio.

A misconfigured decoder (an OpenMP limit that disagrees with the slot's threads, a broken model
directory, a compute type the hardware handles badly, decoding thresholds set too strictly) can
make whisper return nothing for clear speech. An empty transcript looks exactly like a silent
recording, so without a second opinion the job is published as completed and MoRAG ingests an
empty document. The second opinion is Silero VAD, which ships inside the faster-whisper wheel and
runs on onnxruntime, independent of CTranslate2: when it hears speech that whisper did not
transcribe, the job fails with a reason an operator can act on, and MoRAG retries it.

VAD only runs when the transcript could fail the check (too few words for the whole duration),
so a normal job pays nothing; it reads the WAV window by window, so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.media import WHISPER_SAMPLE_RATE
from morag_fleet.convert.whisper import (
    Transcript,
    WhisperOptions,
    model_name,
    resolve_device,
    wav_windows,
)

# Fewest transcribed words per second of detected speech before the transcript is called
# implausible. Read speech, and even slow lecturing, holds several times as many, so a healthy
# transcript sits far above this line and a decoder that dropped most of the speech far below
# it (docs/transcription.md).
MIN_WORDS_PER_SPEECH_SECOND = 0.5
# Less detected speech than this is not evidence enough (a cough, a click, a word of a song).
MIN_SPEECH_SECONDS = 3.0


@dataclass(frozen=True)
class SpeechCheck:
    """What the guard compared: transcribed words against seconds of speech VAD found."""

    words: int
    speech_seconds: float

    @property
    def silent(self) -> bool:
        """VAD heard no voice at all: the few words whisper wrote are its well-known inventions
        on silence and tones ("You", "Beep"), not speech."""
        return self.speech_seconds == 0.0

    @property
    def contradicts(self) -> bool:
        return (self.speech_seconds >= MIN_SPEECH_SECONDS
                and self.words < MIN_WORDS_PER_SPEECH_SECOND * self.speech_seconds)


def word_count(transcript: Transcript) -> int:
    return sum(len(seg.text.split()) for seg in transcript.segments)


def looks_suspicious(words: int, duration: float) -> bool:
    """True when the transcript could fail the check. Detected speech never exceeds the
    duration, so a transcript with enough words for the whole file passes without VAD."""
    return duration >= MIN_SPEECH_SECONDS and words < MIN_WORDS_PER_SPEECH_SECOND * duration


def speech_seconds(wav: Path, window_seconds: float) -> float:
    """Seconds of speech Silero VAD finds in a 16 kHz mono WAV, one window in memory at a time."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    # Short silences split chunks and the padding is small, so the total is close to the time
    # someone is actually talking (the defaults pad and merge generously for cutting audio).
    vad = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=500, speech_pad_ms=100)
    samples_total = 0
    for _, samples in wav_windows(wav, window_seconds):
        chunks = get_speech_timestamps(samples, vad, sampling_rate=WHISPER_SAMPLE_RATE)
        samples_total += sum(chunk["end"] - chunk["start"] for chunk in chunks)
    return samples_total / WHISPER_SAMPLE_RATE


def check_transcript(wav: Path, transcript: Transcript, opts: WhisperOptions,
                     source_name: str = "the audio") -> SpeechCheck | None:
    """Raises ConversionError when VAD hears speech the transcript does not hold; returns what
    was compared, or None when the transcript had words enough that VAD was not needed."""
    words = word_count(transcript)
    if not looks_suspicious(words, transcript.duration):
        return None
    check = SpeechCheck(words, speech_seconds(wav, opts.window_seconds))
    if check.contradicts:
        raise ConversionError(contradiction_reason(check, opts, source_name))
    return check


def contradiction_reason(check: SpeechCheck, opts: WhisperOptions, source_name: str) -> str:
    """The job's error message: the evidence, then what to look at. Names the model, never its
    local path (the message travels to MoRAG)."""
    device, compute_type = resolve_device(opts.device, opts.compute_type)
    return (
        f"whisper returned {check.words} words for {source_name}, but voice activity detection "
        f"found {check.speech_seconds:.1f} s of speech: the transcript contradicts the audio and "
        f"is not published. Check the slot's threads (cpu_threads={opts.cpu_threads}) against "
        f"any OMP_NUM_THREADS / OMP_THREAD_LIMIT in the agent's environment, the model directory "
        f"and model ({model_name(opts.model_dir)}), compute_type ({compute_type} on {device}) "
        f"and any decoding thresholds set in converter_options or task_options."
    )
