"""Delivering spooled results in-process, against the real reference server over HTTP: exactly
once, whichever thread gets there first."""

from __future__ import annotations

from pathlib import Path

from tests.support.jobserver import JobServer

from morag_fleet.agent.delivery import BackgroundDelivery, Deliverer, DeliveryOutcome
from morag_fleet.agent.journal import Journal
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.models import JobResult
from morag_fleet.settings import AgentSettings


def claimed_and_spooled(server: JobServer, tmp: Path, text: str) -> tuple[MoragClient, Journal,
                                                                           str]:
    source = tmp / f"{text}.txt"
    source.write_text(text)
    server.upload(source, "document")
    settings = AgentSettings(worker_id="delivery-test", api_base_url=server.url,
                             temp_dir=tmp / "tmp", state_dir=tmp / "state")
    client = MoragClient(settings)
    job = client.poll(["document"])
    assert job is not None
    journal = Journal(settings.state_dir)
    journal.record_claim(job.job_id, job.content_type, {"job_id": job.job_id})
    journal.spool_result(job.job_id, JobResult(True, content=f"# {text}").to_json())
    return client, journal, job.job_id


def test_a_result_listed_before_it_was_delivered_is_not_sent_again(jobserver,
                                                                   tmp_path) -> None:
    client, journal, job_id = claimed_and_spooled(jobserver, tmp_path, "once")
    deliverer = Deliverer(client, journal)
    listed = journal.outbox()  # the outbox thread's list, taken before the delivery
    assert deliverer.deliver(job_id).delivered
    for entry in listed:
        assert deliverer.deliver(entry.job_id) == DeliveryOutcome(True, "already delivered")
    assert jobserver.stats()["duplicate_results"] == 0
    assert jobserver.result(job_id)["content"] == "# once"
    assert journal.outbox() == []


def test_background_delivery_holds_the_job_from_the_moment_it_is_handed_over(jobserver,
                                                                             tmp_path) -> None:
    client, journal, job_id = claimed_and_spooled(jobserver, tmp_path, "handed")
    finished: list[tuple[str, DeliveryOutcome]] = []
    deliverer = Deliverer(client, journal,
                          on_final=lambda entry, outcome: finished.append((entry.job_id, outcome)))
    delivery = BackgroundDelivery(deliverer, limit=1)
    delivery.submit(job_id)
    # the outbox thread, right after the hand-over: it must leave the job alone
    assert deliverer.deliver(job_id) in (None, DeliveryOutcome(True, "already delivered"))
    assert delivery.wait_idle(timeout=30)
    # one notice of the job's end, from the thread that delivered it
    assert len(finished) == 1 and finished[0][0] == job_id and finished[0][1].kept
    assert jobserver.stats()["duplicate_results"] == 0
    assert jobserver.result(job_id)["content"] == "# handed"
    delivery.close()
