"""Batched transcription (faster-whisper's BatchedInferencePipeline) of known speech, forced on
a short file with a low threshold: the words, and segments in order at the right times."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from morag_fleet.convert.audio import AudioConverter
from morag_fleet.convert.whisper import (
    CLIP_SECONDS,
    WHISPER_SAMPLE_RATE,
    WhisperOptions,
    fixed_clips,
)
from morag_fleet.samples.generate import Speech
from tests.convert.test_audio import assert_starts_match
from tests.support.media import wer

FORCE_BATCHED = {"batch_size": 4, "batch_min_seconds": 0}


@pytest.mark.parametrize("vad", [True, False], ids=["vad", "no-vad"])
def test_batched_transcript_of_known_speech(audio_converter: AudioConverter, speech: Speech,
                                            vad: bool) -> None:
    transcript = audio_converter.transcribe(speech.path, FORCE_BATCHED | {"batch_vad": vad},
                                            lambda f, m: None)
    assert wer(" ".join(speech.sentences), " ".join(s.text for s in transcript.segments)) < 0.3
    starts = [seg.start for seg in transcript.segments]
    assert all(0 <= s < transcript.duration for s in starts), starts
    assert_starts_match(speech.starts, starts)
    assert all(seg.end >= seg.start for seg in transcript.segments)


def test_batching_is_chosen_by_size_and_duration() -> None:
    defaults = WhisperOptions.from_options({})
    assert not defaults.batched_for(defaults.batch_min_seconds - 1)
    assert defaults.batched_for(defaults.batch_min_seconds)
    for off in (0, 1):
        assert not WhisperOptions.from_options({"batch_size": off}).batched_for(3600)
    job = WhisperOptions.from_options({"batch_size": "16", "batch_min_seconds": "5"})
    assert job.batch_size == 16 and job.batched_for(5)


def test_decoding_options_pass_through_and_nothing_else() -> None:
    opts = WhisperOptions.from_options({"no_speech_threshold": 0.2, "initial_prompt": "Garden.",
                                        "temperature": 0.5, "threads": 2})
    assert dict(opts.decode) == {"no_speech_threshold": 0.2, "initial_prompt": "Garden."}
    assert opts.decode_kwargs()["no_speech_threshold"] == 0.2
    assert opts.cpu_threads == 2


def test_fixed_clips_cover_the_window_in_order() -> None:
    rate = WHISPER_SAMPLE_RATE
    samples = np.random.default_rng(2).uniform(-0.3, 0.3, rate * 95).astype(np.float32)
    clips = fixed_clips(samples)
    assert clips[0]["start"] == 0 and clips[-1]["end"] == pytest.approx(95)
    for before, after in itertools.pairwise(clips):
        assert before["end"] == after["start"]
    assert all(0 < c["end"] - c["start"] <= CLIP_SECONDS for c in clips)
