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
    # per-job download dirs are gone, the temp root itself is kept
    assert (agent.dir / "tmp").is_dir()
    assert list((agent.dir / "tmp").iterdir()) == []


def test_slots_are_bound_to_gpus(jobserver, make_agent, make_doc) -> None:
    """GPU binding is an environment variable per slot process; no GPU is needed to check it."""
    ids = [jobserver.upload(make_doc(f"g{i}.txt", "sleep 1.5\ngpu job"), "document")
           for i in range(4)]
    make_agent(jobserver.url, slots=2, gpus=["0", "1"])
    wait_until(lambda: all(jobserver.status(i)["status"] == "completed" for i in ids), 90,
               "gpu-bound jobs completed")
    seen = {jobserver.result(i)["metadata"]["cuda_visible_devices"] for i in ids}
    assert seen == {"0", "1"}


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


def test_slot_converts_the_next_job_while_ingestion_runs(tmp_path, make_agent, make_doc) -> None:
    """MoRAG ingests inside the result PUT. The result is durable once spooled, so the slot
    moves on: with one slot, the second job is downloaded before the first PUT has answered."""
    with running_morag_double(tmp_path / "double", result_delay=4) as double:
        first = double.create_job(make_doc("first.txt", "first"), "document")
        agent = make_agent(double.url, slots=1, long_poll_wait=5)
        agent.wait_for_event("job_converted", timeout=60, job_id=first)
        second = double.create_job(make_doc("second.txt", "second"), "document")
        wait_until(lambda: all(double.status(i)["status"] == "completed"
                               for i in (first, second)), 90, "both completed")
        agent.wait_for_event("result_submitted", timeout=60, job_id=second)
        order = [(e["event"], e.get("job_id")) for e in agent.events()]
        assert order.index(("job_downloaded", second)) < order.index(
            ("result_submitted", first))
        assert agent.stop() == 0
