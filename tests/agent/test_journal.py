"""The journal survives the process: phases, spooled results and crash counts are on disk."""

from __future__ import annotations

from pathlib import Path

from morag_fleet.agent.journal import Journal


def test_phases_outbox_and_reopen(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.record_claim("j1", "document", {"job_id": "j1"})
    assert not journal.record_claim("j1", "document", {"job_id": "j1"})
    journal.record_claim("j2", "audio", {"job_id": "j2"})
    journal.set_phase("j1", "converting")
    journal.spool_result("j1", {"success": True, "content": "# x"})
    journal.close()

    reopened = Journal(tmp_path)
    assert [e.job_id for e in reopened.interrupted()] == ["j2"]
    outbox = reopened.outbox()
    assert [(e.job_id, e.result) for e in outbox] == [("j1", {"success": True, "content": "# x"})]
    assert reopened.record_crash("j2") == 1
    assert reopened.record_crash("j2") == 2
    reopened.record_submit_failure("j1", "down", retry_in=3600)
    assert reopened.outbox(due_only=True) == []
    assert reopened.outbox_depth() == 1
    reopened.mark_delivered("j1")
    assert reopened.outbox() == []
    assert reopened.get("j1").phase == "delivered"


def test_delivered_job_claimed_again_is_ours_anew(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_claim("j1", "document", {"job_id": "j1"})
    journal.spool_result("j1", {"success": True})
    assert not journal.record_claim("j1", "document", {"job_id": "j1"})
    journal.mark_delivered("j1")
    assert journal.record_claim("j1", "document", {"job_id": "j1"})
    assert journal.get("j1").phase == "claimed"
