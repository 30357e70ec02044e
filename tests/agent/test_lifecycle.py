"""The whole job lifecycle with real processes over real HTTP: reference server and MoRAG double."""

from __future__ import annotations

import signal

from tests.support.agent_proc import wait_until
from tests.support.morag_double import running_morag_double


def test_jobs_complete_against_reference_server(jobserver, make_agent, make_doc) -> None:
    ids = [jobserver.upload(make_doc(f"note {i}.txt", f"Paragraph number {i}.\n\nSecond."),
                            "document") for i in range(6)]
    agent = make_agent(jobserver.url, slots=2)
    wait_until(lambda: all(jobserver.status(i)["status"] == "completed" for i in ids), 90,
               "all jobs completed")
    for index, job_id in enumerate(ids):
        result = jobserver.result(job_id)
        assert result["content"].startswith(f"# Document: note {index}.txt")
        assert f"Paragraph number {index}." in result["content"]
        meta = result["metadata"]
        assert meta["content_type"] == "document"
        assert meta["file_name"] == f"note {index}.txt"
        assert len(meta["checksum"]) == 64
        assert "source_path" not in meta and "remote_job_id" not in meta
    # the slot processes are long-lived: two slots served six jobs
    assert len({jobserver.result(i)["metadata"]["slot_pid"] for i in ids}) <= 2
    agent.send(signal.SIGTERM)
    assert agent.wait(60) == 0
    assert agent.find("agent_stopped")


def test_jobs_complete_against_morag_double(tmp_path, make_agent, make_doc) -> None:
    with running_morag_double(tmp_path / "double") as double:
        ids = [double.create_job(make_doc(f"d{i}.txt", f"Body {i}"), "document")
               for i in range(3)]
        agent = make_agent(double.url, slots=2, long_poll_wait=5)
        wait_until(lambda: all(double.status(i)["status"] == "completed" for i in ids), 90,
                   "jobs completed on the MoRAG double")
        assert agent.stop() == 0
        for job_id in ids:
            assert double.status(job_id)["worker_id"] == "agent-1"
