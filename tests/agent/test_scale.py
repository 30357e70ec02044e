"""Many jobs across several agents: every job completed exactly once."""

from __future__ import annotations

from tests.support.agent_proc import wait_until


def test_200_jobs_three_agents_two_slots_each(jobserver, make_agent, tmp_path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    ids = []
    for i in range(200):
        path = folder / f"job-{i:03d}.txt"
        path.write_text(f"job number {i}")
        ids.append(jobserver.upload(path, "document"))
    agents = [make_agent(jobserver.url, worker_id=f"agent-{n}", slots=2) for n in range(3)]
    wait_until(lambda: jobserver.stats()["completed"] == 200, 300, "200 completed")
    stats = jobserver.stats()
    assert stats["failed"] == 0 and stats["pending"] == 0 and stats["processing"] == 0
    assert stats["duplicate_results"] == 0
    workers = {}
    for i, job_id in enumerate(ids):
        result = jobserver.result(job_id)
        assert f"job number {i}" in result["content"]
        workers[job_id] = jobserver.status(job_id)["worker_id"]
    assert set(workers.values()) <= {a.worker_id for a in agents}
    assert len(set(workers.values())) >= 2  # the work was really shared
    claimed = sum(len(a.find("job_claimed")) for a in agents)
    assert claimed == 200
    for agent in agents:
        assert agent.stop() == 0
