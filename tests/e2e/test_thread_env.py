"""Transcription stays right whatever OpenMP limits the operator's environment carries.

An OpenMP thread limit below the thread count CTranslate2 was given made it decode nothing, and
the job was reported completed with an empty transcript. These run the real agent process (and
so real slot processes) under each environment, with one slot and with two, and check the
transcripts against the known speech.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from morag_fleet.samples.generate import Speech, speech_with_gaps
from tests.support.agent_proc import AgentProcess, wait_until
from tests.support.jobserver import running_jobserver
from tests.support.media import wer

SENTENCES = (
    "The harbour master counted twelve fishing boats before sunrise.",
    "Fresh bread from the village bakery was sold out by nine o'clock.",
    "Our library will open a reading room for children next winter.",
)
ENVIRONMENTS = {
    "omp-thread-limit-1": {"OMP_THREAD_LIMIT": "1"},
    "omp-num-threads-1": {"OMP_NUM_THREADS": "1"},
    "no-openmp-setting": {},
}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    return speech_with_gaps(SENTENCES, tmp_path_factory.mktemp("speech") / "harbour.wav", gap=1.0)


def transcript_text(markdown: str) -> str:
    body = markdown.split("## Detailed Transcript\n\n", 1)[1]
    return " ".join(line.split("] ", 1)[-1] for line in body.strip().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("slots", [1, 2])
@pytest.mark.parametrize("env_name", list(ENVIRONMENTS))
def test_transcripts_right_under_operator_openmp_env(
        tmp_path: Path, speech: Speech, env_name: str, slots: int) -> None:
    with running_jobserver(tmp_path / "server") as server:
        agent = AgentProcess(tmp_path, server.url, f"threads-{slots}", slots=slots,
                             content_types=("audio",), selftest=False)
        agent.env_extra = {k: v for k, v in ENVIRONMENTS[env_name].items()}
        # slot_threads 2 is what a two-core host gives one slot: the combination that failed
        # with OMP_THREAD_LIMIT=1 in the environment
        if slots == 1:
            agent.config_path.write_text(agent.config_path.read_text() + "slot_threads: 2\n")
        agent.start()
        try:
            ids = [server.upload(speech.path, "audio") for _ in range(slots)]
            wait_until(lambda: all(server.status(i)["status"] in ("completed", "failed")
                                   for i in ids), 180, "transcriptions finished")
            results = [server.result(i) for i in ids]
        finally:
            assert agent.stop() == 0
    for result in results:
        assert result["status"] == "completed", result.get("error_message")
        assert "_No speech detected._" not in result["content"]
        assert wer(" ".join(SENTENCES), transcript_text(result["content"])) < 0.3
    if ENVIRONMENTS[env_name]:
        ignored = agent.find("openmp_environment_ignored")
        assert ignored and set(ignored[0]["ignored"]) == set(ENVIRONMENTS[env_name])
