"""Conversions inside a real agent vs the libraries called directly, side by side in one run.

    .venv/bin/python tests/bench/bench_agent_convert.py [--speech-repeats 3] [--pages 300]

One agent process with one slot converts, through the reference job server:
- an audio job twice: the first right after start (its slot was warmed by the start-up
  self-test, so no job should load a model), then again;
- a PDF job, twice.
The same files are converted directly in this process (faster-whisper `transcribe` with the same
model and settings; pypdfium2 text extraction), and the table compares realtime factors, pages/s
and the first job after start with the next one. Times inside the agent come from its own
`job_converted` log events (the slot's conversion time, IPC included).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.convert.conftest import SENTENCES
from tests.support.agent_proc import AgentProcess
from tests.support.jobserver import running_jobserver
from tests.support.media import page_sentences, text_pdf

from morag_fleet.convert.whisper import default_model_dir
from morag_fleet.samples.generate import encode_audio, speech_with_gaps


def direct_whisper(path: Path) -> float:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(default_model_dir()), device="cpu", compute_type="int8")
    start = time.perf_counter()
    segments, _info = model.transcribe(str(path), beam_size=5, word_timestamps=True)
    list(segments)
    return time.perf_counter() - start


def direct_pdf(path: Path) -> float:
    import pypdfium2 as pdfium

    start = time.perf_counter()
    document = pdfium.PdfDocument(str(path))
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        textpage.get_text_bounded()
        textpage.close()
        page.close()
    document.close()
    return time.perf_counter() - start


def run_job(server, agent: AgentProcess, path: Path, content_type: str) -> tuple[float, float]:
    """(conversion seconds inside the slot, claim -> finished seconds) for one job."""
    job_id = server.upload(path, content_type)
    done = agent.wait_for_event("job_finished", timeout=600, job_id=job_id)
    assert done["success"], done
    converted = agent.find("job_converted", job_id=job_id)[0]
    return float(converted["duration_s"]), float(done["duration_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speech-repeats", type=int, default=3)
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-agent-convert-"))
    speech = speech_with_gaps(SENTENCES * args.speech_repeats, work / "speech.wav", gap=1.0)
    audio = encode_audio(speech.path, work / "speech.mp3")
    pdf = text_pdf(work / "bench.pdf", page_sentences(args.pages, words_per_page=120))
    seconds = speech.duration

    with running_jobserver(work / "server") as server:
        agent = AgentProcess(work, server.url, "bench-agent", slots=1,
                             content_types=("audio", "document"), log_level="INFO").start()
        try:
            started = len(agent.find("loading whisper model"))  # by the self-test
            _, first_total = run_job(server, agent, audio, "audio")
            warm_convert, warm_total = run_job(server, agent, audio, "audio")
            loaded_by_jobs = len(agent.find("loading whisper model")) - started
            pdf_convert, _ = run_job(server, agent, pdf, "document")
            pdf_warm, _ = run_job(server, agent, pdf, "document")
        finally:
            agent.stop()
    whisper_direct = min(direct_whisper(audio) for _ in range(2))
    pdf_direct = min(direct_pdf(pdf) for _ in range(3))
    pdf_agent = min(pdf_convert, pdf_warm)

    rtf_direct, rtf_agent = seconds / whisper_direct, seconds / warm_convert
    rows = [
        ("audio realtime factor (x)", f"{rtf_agent:.1f}", f"{rtf_direct:.1f}",
         f"{rtf_agent / rtf_direct:.2f}", ">= 0.90", rtf_agent / rtf_direct >= 0.9),
        ("PDF pages/s", f"{args.pages / pdf_agent:.0f}", f"{args.pages / pdf_direct:.0f}",
         f"{pdf_direct / pdf_agent:.2f}", "report", True),
        ("audio job, claim->done, first after start (s)", f"{first_total:.2f}", "-", "-",
         "report", True),
        ("audio job, claim->done, second (s)", f"{warm_total:.2f}", "-",
         f"{first_total / warm_total:.2f}x", "report", True),
        ("whisper models loaded by jobs", str(loaded_by_jobs), "-", "-", "0 (self-test warmed)",
         loaded_by_jobs == 0),
    ]
    print(f"\nConversions inside one agent (1 slot) vs direct library calls; "
          f"{seconds:.0f} s of speech, {args.pages}-page PDF, tiny.en int8 on CPU\n")
    header = ("measurement", "agent", "direct", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + "  verdict")
    for row in rows:
        cells = "  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths, strict=False))
        print(f"{cells}  {'PASS' if row[5] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
