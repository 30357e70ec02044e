"""The self-test: each enabled content type converts a small shipped sample in a real slot
process, and the output is compared with the sample's known text.

Why: the capability check only asks whether the libraries, tools and model files are there. A
model file that is truncated, a tesseract that reads nothing, a yt-dlp that cannot fetch: those
pass it and then fail every job. The agent runs this before it reports ready and does not poll for
a type that failed; `morag-agent check --selftest` runs it for operators and the deploy.

The samples and what each must produce live in `morag_fleet/samples/selftest/manifest.json`.
Speech is scored by word error rate, OCR and documents by the share of known words found, web
pages by the share of known paragraphs found. Web and YouTube converters fetch URLs, so the
samples are served on loopback for the duration, and only these requests may fetch loopback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from morag_fleet.agent.slots import ConvertRequest, SlotProcess
from morag_fleet.convert.registry import backend_name, merged_options
from morag_fleet.settings import AgentSettings

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples" / "selftest"
SAMPLE_TIMEOUT = 60.0  # seconds per sample, slot start and model load included
_TIMESTAMP_LINE = re.compile(r"^\[(?:\d+:)?\d+:\d+\]\s*(.*)$")


@dataclass(frozen=True)
class SelftestResult:
    """One type's verdict; `score` is a word error rate (lower is better) when `metric` is
    "wer", else the share of the known words or paragraphs found."""

    content_type: str
    ok: bool
    seconds: float
    score: float | None = None
    metric: str = ""
    reason: str = ""
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        """What the hello and `--json` carry (the type is the key there)."""
        data = asdict(self)
        del data["content_type"]
        return data


VERDICT_REASON_CHARS = 300  # a reason as the heartbeat carries it


def selftest_verdict(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{type: {ok, reason}}: the part of the hello's `selftest` that every heartbeat carries
    too, so a controller that missed the hello still shows why a type is not polled for."""
    return {name: {"ok": bool(result.get("ok", True)),
                   "reason": str(result.get("reason") or "")[:VERDICT_REASON_CHARS]}
            for name, result in results.items()}


# ---- scoring ------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-case words; punctuation and markdown marks are not words."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words: Levenshtein over words."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / len(ref)


def share_found(expected: Sequence[str], found_in: Sequence[str]) -> float:
    """The share of `expected` items present in `found_in` (a set-like membership test)."""
    present = set(found_in)
    return sum(1 for item in expected if item in present) / len(expected) if expected else 1.0


def transcript_text(markdown: str) -> str:
    """The spoken words of an audio, video or YouTube result: its `[MM:SS] text` lines."""
    lines = (_TIMESTAMP_LINE.match(line.strip()) for line in markdown.splitlines())
    return " ".join(match.group(1) for match in lines if match)


def body_text(markdown: str) -> str:
    """A result without its headings and `- **Key**: value` lines, so the file name and the
    metadata never count as words the converter read."""
    kept = [line for line in markdown.splitlines()
            if not line.lstrip().startswith(("#", "- **"))]
    return "\n".join(kept).strip()


def _squash(text: str) -> str:
    return " ".join(words(text))


def score(spec: dict[str, Any], speech: Sequence[str], markdown: str
          ) -> tuple[str, float, bool, str]:
    """(metric, score, passed, what was found) for one sample's output."""
    if spec.get("expect") == "speech":
        heard = transcript_text(markdown) or body_text(markdown)  # another layout (`morag`)
        wer = word_error_rate(" ".join(speech), heard)
        return "wer", wer, wer <= float(spec["max_wer"]), heard
    body = body_text(markdown)
    if "paragraphs" in spec:
        squashed = _squash(body)
        found = [p for p in spec["paragraphs"] if _squash(p) in squashed]
        share = len(found) / len(spec["paragraphs"])
        return "paragraphs", share, share >= float(spec["min_found"]), body
    known = spec.get("words") or words(" ".join(spec.get("lines", [])))
    share = share_found(known, words(body))
    return "words", share, share >= float(spec["min_found"]), body


# ---- samples ------------------------------------------------------------------------------


def load_manifest() -> dict[str, Any]:
    return json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))


def sample_spec(manifest: dict[str, Any], content_type: str, backend: str
                ) -> dict[str, Any] | None:
    """The type's sample, with the backend's own file where it reads another format."""
    spec = manifest["types"].get(content_type)
    if spec is None:
        return None
    return {**spec, **spec.get("by_backend", {}).get(backend, {})}


def _job_info(path: Path, content_type: str) -> dict[str, Any]:
    return {"file_name": path.name, "content_type": content_type,
            "mime_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            "file_size": path.stat().st_size,
            "checksum": hashlib.sha256(path.read_bytes()).hexdigest()}


@contextlib.contextmanager
def _workdir(settings: AgentSettings) -> Iterator[Path]:
    """Converters write next to their source, so samples are copied out of the package."""
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="selftest-", dir=settings.temp_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---- running ------------------------------------------------------------------------------


class _Case:
    """One content type's sample, ready to send to a slot."""

    def __init__(self, content_type: str, spec: dict[str, Any], settings: AgentSettings,
                 workdir: Path, base_url: str) -> None:
        self.content_type = content_type
        self.spec = spec
        sample = workdir / spec["file"]
        if not sample.exists():
            shutil.copyfile(SAMPLES_DIR / spec["file"], sample)
        options = merged_options(content_type, settings, None)
        self.source = sample
        if spec.get("fetch"):
            self.source = workdir / f"{content_type}.url.txt"
            self.source.write_text(f"{base_url}/{spec['file']}\n", encoding="utf-8")
            options["allow_private"] = True  # this request only: the samples are on loopback
        self.request = ConvertRequest(
            job_id=f"selftest-{content_type}", content_type=content_type,
            source=str(self.source), options=options,
            job_info=_job_info(self.source, content_type))


def _judge(case: _Case, slot: SlotProcess, speech: Sequence[str]) -> SelftestResult:
    started = time.monotonic()
    outcome = slot.convert(case.request, SAMPLE_TIMEOUT, lambda _f, _m: None, lambda: False)
    seconds = round(time.monotonic() - started, 2)
    if not outcome.ok:
        return SelftestResult(case.content_type, False, seconds, reason=outcome.error[:300])
    metric, value, passed, found = score(case.spec, speech, outcome.markdown)
    reason = "" if passed else _why(case.spec, metric, value, found)
    return SelftestResult(case.content_type, passed, seconds, round(value, 3), metric, reason)


def _why(spec: dict[str, Any], metric: str, value: float, found: str) -> str:
    seen = " ".join(found.split())[:120] or "nothing"
    if metric == "wer":
        return f"word error rate {value:.2f} > {spec['max_wer']} (heard: {seen!r})"
    return f"found {value:.0%} of the known {metric} (< {float(spec['min_found']):.0%}; " \
           f"output: {seen!r})"


SPEECH_TYPES = ("audio", "video", "youtube")  # all load the same whisper model in a slot


def _work_through(cases: queue.Queue[_Case], slot: SlotProcess, speech: Sequence[str],
                  results: dict[str, SelftestResult], every_slot: _Case | None) -> None:
    """Takes cases until none are left; then, if this slot has not transcribed anything, it
    converts `every_slot` too: each slot may bind its own GPU, and a slot's first job would
    otherwise pay for loading the model."""
    transcribed = False
    while True:
        try:
            case = cases.get_nowait()
        except queue.Empty:
            break
        _record(results, case.content_type, _safe_judge(case, slot, speech))
        transcribed = transcribed or case.content_type in SPEECH_TYPES
    if every_slot is not None and not transcribed:
        _record(results, every_slot.content_type, _safe_judge(every_slot, slot, speech))


def _safe_judge(case: _Case, slot: SlotProcess, speech: Sequence[str]) -> SelftestResult:
    try:
        return _judge(case, slot, speech)
    except Exception as exc:  # a bug here must fail the type, not the agent's start
        return SelftestResult(case.content_type, False, 0.0, reason=f"self-test error: {exc!r}")


_record_lock = threading.Lock()


def _record(results: dict[str, SelftestResult], content_type: str,
            result: SelftestResult) -> None:
    """A type converted on several slots keeps its first failure, else its first pass."""
    with _record_lock:
        previous = results.get(content_type)
        if previous is None or (previous.ok and not result.ok):
            results[content_type] = result


def _plan(settings: AgentSettings, content_types: Sequence[str], manifest: dict[str, Any]
          ) -> tuple[dict[str, dict[str, Any]], dict[str, SelftestResult]]:
    """(the samples to convert by type, the types skipped): a plug-in converter's output is not
    known here, so it is not judged."""
    specs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, SelftestResult] = {}
    for content_type in content_types:
        backend = backend_name(content_type, settings)
        spec = sample_spec(manifest, content_type, backend)
        if ":" in backend or spec is None:
            skipped[content_type] = SelftestResult(
                content_type, True, 0.0, reason=f"not self-tested ({backend} backend)",
                skipped=True)
        else:
            specs[content_type] = spec
    return specs, skipped


def run_selftest(settings: AgentSettings, content_types: Sequence[str],
                 slots: Sequence[SlotProcess]) -> dict[str, SelftestResult]:
    """Converts each type's sample in `slots` (in parallel, one type at a time per slot) and
    judges the output; every slot transcribes speech at least once. The slots stay running, with
    the converters they built loaded."""
    from morag_fleet.samples import serve_samples

    manifest = load_manifest()
    specs, results = _plan(settings, content_types, manifest)
    with _workdir(settings) as workdir, serve_samples(workdir) as base_url:
        cases: queue.Queue[_Case] = queue.Queue()
        for content_type, spec in specs.items():
            try:
                cases.put(_Case(content_type, spec, settings, workdir, base_url))
            except OSError as exc:  # a sample missing from the install
                results[content_type] = SelftestResult(
                    content_type, False, 0.0, reason=f"self-test sample unusable: {exc}")
        every_slot = next((case for case in list(cases.queue)
                           if case.content_type in SPEECH_TYPES and not case.spec.get("fetch")),
                          None)
        used = slots if every_slot is not None else slots[: max(1, len(specs))]
        threads = [threading.Thread(target=_work_through, name=f"selftest-{slot.index}",
                                    args=(cases, slot, manifest["speech"], results, every_slot),
                                    daemon=True)
                   for slot in used]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {name: results[name] for name in content_types}


def selftest_slots(settings: AgentSettings) -> list[SlotProcess]:
    """Slots shaped as the agent's own (GPU binding, memory ceiling), for `check --selftest`."""
    gpus = settings.gpus
    return [SlotProcess(i, settings.__dict__.copy(), gpus[i % len(gpus)] if gpus else None,
                        settings.slot_memory_limit_mb)
            for i in range(settings.max_concurrent_jobs)]


def check_selftest(settings: AgentSettings) -> dict[str, SelftestResult]:
    """`morag-agent check --selftest`: every configured type must pass, so a type whose
    converter is not even available here fails with the capability check's reason."""
    from morag_fleet.convert.registry import capabilities

    available = capabilities(settings)
    usable = [name for name in settings.content_types if available[name].ok]
    slots = selftest_slots(settings)
    try:
        tested = run_selftest(settings, usable, slots) if usable else {}
    finally:
        for slot in slots:
            slot.stop()
    return {name: tested.get(name) or SelftestResult(
                name, False, 0.0, reason=f"converter not available: {available[name].reason}")
            for name in settings.content_types}
