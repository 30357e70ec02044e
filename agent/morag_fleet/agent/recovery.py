"""What a previous run of the agent left behind, taken back before the first poll.

A damaged or lost journal is said loudly; jobs the previous run was working on are run again
(unless they keep crashing the agent, the server took them back, or an operator cancelled them:
those are reported cancelled); results still in the outbox
are confirmed with the server before they are sent; and jobs the server holds for this worker
that the journal does not know are run again. Leases are renewed for every job taken back until
its result is delivered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from morag_fleet.agent.delivery import Deliverer
from morag_fleet.agent.journal import DELIVERED, Journal, JournalEntry
from morag_fleet.agent.journal_check import record_damage
from morag_fleet.agent.leases import LeaseKeeper
from morag_fleet.agent.runner import cancel_reason
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.errors import ApiError, ApiNotFound
from morag_fleet.jobs.models import Job
from morag_fleet.log import get_logger
from morag_fleet.settings import AgentSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class Recovery:
    """The agent's parts it needs, and three callbacks: `rerun(job)` queues a job taken back,
    `give_up(job_id, reason)` spools its failure, `tell(name, **fields)` sends an agent event to
    the controller."""

    settings: AgentSettings
    journal: Journal
    client: MoragClient
    leases: LeaseKeeper
    deliverer: Deliverer
    rerun: Callable[[Job], None]
    give_up: Callable[[str, str], None]
    tell: Callable[..., None]

    def run(self) -> None:
        self._report_damage()
        self._replay_journal()
        self._recover_forgotten()

    def _report_damage(self) -> None:
        """Said loudly, kept for `morag-agent check`, and sent to the controller; the jobs the
        journal forgot are found again through the server (`_recover_forgotten`)."""
        damage = self.journal.damage
        if not damage:
            return
        for finding in damage:
            log.error("journal_damaged", path=str(self.journal.path), lost=finding)
        record_damage(self.settings.state_dir, damage)
        self.tell("journal_damaged", findings=damage)

    def _replay_journal(self) -> None:
        """Finished results wait in the outbox (the outbox thread sends them); interrupted jobs
        are re-run, unless they keep crashing the agent."""
        for entry in [*self.journal.interrupted(), *self.journal.outbox()]:
            self.leases.hold(entry.job_id, entry.job.get("lease_seconds"))
        for entry in self.journal.interrupted():
            if entry.cancelled:  # the operator was told it would not run again
                log.warning("job_cancel_kept", job_id=entry.job_id)
                self.give_up(entry.job_id, cancel_reason(entry.cancel_note))
                continue
            crashes = self.journal.record_crash(entry.job_id)
            if crashes >= self.settings.max_job_crashes:
                log.error("job_poisoned", job_id=entry.job_id, crashes=crashes)
                self.give_up(entry.job_id, f"the agent stopped {crashes} times while "
                              "processing this job; giving up (poison job?)")
                continue
            if self._still_ours(entry):
                log.warning("job_resumed", job_id=entry.job_id, crashes=crashes)
                self.rerun(Job(**entry.job))
        waiting = [entry.job_id for entry in self.journal.outbox()]
        if waiting:
            self.deliverer.confirm_before_sending(waiting)
            log.info("outbox_replayed", depth=len(waiting))

    def _still_ours(self, entry: JournalEntry) -> bool:
        try:
            status = self.client.job_status(entry.job_id)
        except ApiNotFound:
            self.journal.mark_delivered(entry.job_id)
            log.warning("job_gone", job_id=entry.job_id)
            return False
        except ApiError:
            return True  # cannot ask: it was ours, so run it
        ours = status.get("status") == "processing" and status.get("worker_id") in (
            None, self.settings.worker_id)
        if not ours:
            self.leases.release(entry.job_id)
            self.journal.mark_delivered(entry.job_id)
            log.warning("job_taken_back", job_id=entry.job_id, status=status.get("status"))
        return ours

    def _recover_forgotten(self) -> None:
        """Jobs the server holds for this worker that the journal does not know are run again:
        the server still waits for them, and running them is the one way to report them with a
        result. Servers without the held-jobs endpoint (MoRAG) answer None: nothing to compare."""
        try:
            held = self.client.held_jobs()
        except ApiError as exc:
            log.warning("held_jobs_unknown", error=str(exc))
            return
        for job in held or []:
            entry = self.journal.get(job.job_id)
            if entry is not None and entry.phase != DELIVERED:
                continue
            record = dataclasses.asdict(job)
            if not self.journal.record_claim(job.job_id, job.content_type, record):
                continue
            log.error("job_forgotten", job_id=job.job_id, content_type=job.content_type,
                      reason="the server holds this job for this worker but the journal had "
                      "no record of it; running it again")
            self.leases.hold(job.job_id, job.lease_seconds)
            self.rerun(job)
