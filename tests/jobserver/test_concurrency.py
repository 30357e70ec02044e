"""Claims are atomic: many pollers at once never get the same job."""

from __future__ import annotations

import threading
from collections import Counter

import requests

from tests.support.jobserver import JOBS


def test_eight_concurrent_pollers_claim_each_of_50_jobs_exactly_once(server, make_file) -> None:
    ids = server.create_many(make_file(), "document", 50)
    claims: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def poller(worker: str) -> None:
        session = requests.Session()
        try:
            for _ in range(40):
                response = session.get(
                    server.url + f"{JOBS}/poll", timeout=60,
                    params={"worker_id": worker, "content_types": "document", "max_jobs": 1})
                response.raise_for_status()
                job_id = response.json()["job_id"]
                if job_id is not None:
                    with lock:
                        claims.append((job_id, worker))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poller, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    per_job = Counter(job_id for job_id, _ in claims)
    assert sorted(per_job) == sorted(ids)
    assert set(per_job.values()) == {1}
    for job_id, worker in claims:
        assert server.status(job_id)["worker_id"] == worker
    stats = server.stats()
    assert (stats["claims"], stats["processing"], stats["pending"]) == (50, 50, 0)
