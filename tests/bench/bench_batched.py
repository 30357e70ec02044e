"""Sequential vs batched whisper transcription of long speech (not collected by pytest).

    .venv/bin/python tests/bench/bench_batched.py [--minutes 10] [--batch-sizes 4,8,16]

A long speech file is generated with espeak-ng from known, varied sentences (cached under /tmp,
generating it takes a while), then transcribed by `Transcriber` once per variant: sequential
(today's path), and batched at a few batch sizes, with and without VAD. Each variant runs in its
own child process so its peak RSS is its own, with the heap settings of a slot process
(agent/slotheap.py). The table shows wall seconds (model load excluded), the speed ratio against
sequential, word error rate against the known text and peak RSS. Threads are the slot's default
share of this host's CPUs. The load average is printed too: on a shared host, other work slows
every variant.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

CACHE = Path("/tmp/morag-bench-batched")
LAST_ROWS: dict[str, dict] = {}  # variant label -> its child's report, for the verdict
SUBJECTS = ("the committee", "our neighbour", "the young teacher", "a tired farmer",
            "the city council", "my older brother", "the night nurse", "a local baker",
            "the museum guide", "every volunteer", "the bus driver", "a quiet student")
VERBS = ("painted", "repaired", "carried", "counted", "cleaned", "delivered", "measured",
         "ordered", "visited", "photographed", "described", "borrowed")
OBJECTS = ("the wooden bench", "a basket of apples", "the old bicycle", "twelve heavy boxes",
           "the broken window", "a letter from the bank", "the kitchen table", "three new maps",
           "the garden gate", "a bag of flour", "the library books", "the blue umbrella")
PLACES = ("near the river", "behind the station", "at the market", "in the village hall",
          "beside the school", "on the hill", "outside the bakery", "in the harbour",
          "under the bridge", "at the farm", "in the park", "by the church")
TIMES = ("on Monday morning", "before lunch", "after the storm", "last winter",
         "every Friday", "late at night", "during the festival", "in early spring",
         "yesterday afternoon", "at sunrise", "next weekend", "before the meeting")


def sentences(count: int, seed: int = 11) -> list[str]:
    """Distinct, plain English sentences from a seeded grammar: varied words, easy to score."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        text = (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                f"{rng.choice(PLACES)} {rng.choice(TIMES)}.")
        if text not in seen:
            seen.add(text)
            out.append(text[0].upper() + text[1:])
    return out


def long_speech(minutes: float) -> tuple[Path, list[str]]:
    """A 16 kHz mono WAV of about `minutes` of speech, and its sentences; cached by length."""
    from morag_fleet.convert.media import extract_wav
    from morag_fleet.samples.generate import speech_with_gaps

    CACHE.mkdir(parents=True, exist_ok=True)
    texts = sentences(int(minutes * 60 / 5.25))  # a sentence and its gap take about 5 s
    wav16 = CACHE / f"speech-{len(texts)}.wav"
    text_file = wav16.with_suffix(".json")
    if not wav16.exists() or not text_file.exists():
        raw = speech_with_gaps(texts, CACHE / f"raw-{len(texts)}.wav", gap=1.0)
        extract_wav(raw.path, wav16, threads=2)
        text_file.write_text(json.dumps(texts))
        raw.path.unlink()
    return wav16, json.loads(text_file.read_text())


def child(spec: dict) -> dict:
    """Runs in a fresh interpreter, set up as a slot process keeps its heap: loads the model (not
    timed), transcribes, reports."""
    import resource

    from morag_fleet.agent.slotheap import keep_freed_memory
    from morag_fleet.convert.whisper import Transcriber, WhisperOptions

    keep_freed_memory()
    opts = WhisperOptions.from_options(spec["options"])
    transcriber = Transcriber()
    transcriber.model(opts)
    started = time.perf_counter()
    transcript = transcriber.transcribe_wav(Path(spec["wav"]), opts, lambda f, m: None)
    seconds = time.perf_counter() - started
    texts = [seg.text for seg in transcript.segments]
    return {"seconds": seconds, "texts": texts, "starts": [s.start for s in transcript.segments],
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_variant(wav: Path, options: dict) -> dict:
    spec = json.dumps({"wav": str(wav), "options": options})
    done = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def repeats(texts: list[str]) -> int:
    """Segments that repeat the one before word for word: the hallucination seen on long
    recordings decoded without VAD."""
    return sum(1 for a, b in itertools.pairwise(texts) if a.strip() == b.strip())


def variants(batch_sizes: list[int], no_vad_size: int, threads: int) -> list[tuple[str, dict]]:
    base = {"threads": threads, "batch_min_seconds": 0}
    out = [("sequential", base | {"batch_size": 0})]
    out += [(f"batched {b}, VAD", base | {"batch_size": b, "batch_vad": True})
            for b in batch_sizes]
    out.append((f"batched {no_vad_size}, no VAD",
                base | {"batch_size": no_vad_size, "batch_vad": False}))
    out.append((f"batched {no_vad_size}, VAD, beam 5",
                base | {"batch_size": no_vad_size, "batch_vad": True, "batch_beam_size": 5}))
    return out


def head_of(wav: Path, seconds: float) -> Path:
    """The first `seconds` of the long WAV, cached beside it."""
    import wave

    dest = CACHE / f"head-{seconds:.0f}.wav"
    with wave.open(str(wav), "rb") as src, wave.open(str(dest), "wb") as out:
        out.setparams(src.getparams())
        out.writeframes(src.readframes(int(seconds * src.getframerate())))
    return dest


def threshold_rows(wav: Path, lengths: list[float], batch_size: int, threads: int,
                   reference: list[str]) -> list[tuple[object, ...]]:
    """Sequential vs batched on short heads of the file: where batching starts to pay."""
    from tests.support.media import wer

    rows = []
    for seconds in lengths:
        head = head_of(wav, seconds)
        ref = " ".join(reference[: max(1, int(seconds / 5.25))])
        seq, bat = (run_variant(head, {"threads": threads, "batch_min_seconds": 0,
                                       "batch_size": size}) for size in (0, batch_size))
        rows.append((f"{seconds:.0f} s", f"{seq['seconds']:.1f}", f"{bat['seconds']:.1f}",
                     f"{seq['seconds'] / bat['seconds']:.2f}x",
                     f"{wer(ref, ' '.join(seq['texts'])):.3f}",
                     f"{wer(ref, ' '.join(bat['texts'])):.3f}"))
    return rows


def long_rows(wav: Path, texts: list[str], sizes: list[int], no_vad_size: int,
              threads: int) -> list[tuple[object, ...]]:
    """Every variant on the whole file, each in its own child; transcripts kept for reading."""
    from tests.support.media import wer

    reference = " ".join(texts)
    rows: list[tuple[object, ...]] = []
    base = 0.0
    for label, options in variants(sizes, no_vad_size, threads):
        result = run_variant(wav, options)
        LAST_ROWS[label] = result
        (CACHE / f"{label.replace(' ', '').replace(',', '-')}.txt").write_text(
            "\n".join(result["texts"]) + "\n")
        base = base or result["seconds"]  # sequential runs first
        rows.append((label, f"{result['seconds']:.1f}", f"{base / result['seconds']:.2f}x",
                     f"{wer(reference, ' '.join(result['texts'])):.3f}",
                     len(result["texts"]), repeats(result["texts"]), f"{result['rss_mib']:.0f}"))
    return rows


def main() -> int:
    from morag_fleet.cpu import default_threads

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch-sizes", default="2,4,8")
    parser.add_argument("--no-vad-batch-size", type=int, default=4)
    parser.add_argument("--short", default="30,60,120",
                        help="lengths (s) for the short-file table; empty to skip")
    parser.add_argument("--skip-long", action="store_true", help="only the short-file table")
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    wav, texts = long_speech(args.minutes)
    load_before = os.getloadavg()[0]
    if args.short:
        lengths = [float(x) for x in args.short.split(",")]
        table(f"short files: sequential vs batched {args.no_vad_batch_size} with VAD",
              ("length", "sequential s", "batched s", "speed", "WER seq", "WER batched"),
              threshold_rows(wav, lengths, args.no_vad_batch_size, args.threads, texts))
    if not args.skip_long:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        minutes = wav.stat().st_size / 2 / 16000 / 60
        table(f"{minutes:.1f} min of speech, {len(texts)} sentences, threads={args.threads}, "
              f"{time.strftime('%Y-%m-%d')}",
              ("variant", "seconds", "speed", "WER", "segments", "repeats", "peak RSS MiB"),
              long_rows(wav, texts, sizes, args.no_vad_batch_size, args.threads))
        ok = verdict_line(texts)
    else:
        ok = True
    print(f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f}; "
          f"transcripts in {CACHE}")
    return 0 if ok else 1


def verdict_line(texts: list[str]) -> bool:
    """The defaults against sequential, from the transcripts the table just wrote."""
    from tests.support.media import wer

    from morag_fleet.convert.whisper import WhisperOptions

    defaults = WhisperOptions.from_options({})
    seq, bat = LAST_ROWS["sequential"], LAST_ROWS[f"batched {defaults.batch_size}, VAD"]
    reference = " ".join(texts)
    speed = seq["seconds"] / bat["seconds"]
    extra = wer(reference, " ".join(bat["texts"])) - wer(reference, " ".join(seq["texts"]))
    ok = speed >= 1.5 and extra <= 0.02
    print(f"default batched ({defaults.batch_size}, beam {defaults.batch_beam_size}) vs "
          f"sequential (beam {defaults.beam_size}): {speed:.2f}x, WER {extra:+.3f} "
          f"(target >= 1.5x, <= +0.02): {'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        raise SystemExit(0)
    raise SystemExit(main())
