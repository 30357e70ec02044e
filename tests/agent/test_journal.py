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


def test_every_write_survives_the_process_being_killed(tmp_path: Path) -> None:
    """Phase changes and delivery marks skip the disk sync (see journal.py), which must still
    keep them across our own crash: a child writes each kind, then dies by SIGKILL."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from morag_fleet.agent.journal import Journal\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "j.record_claim('a', 'document', {'job_id': 'a'})\n"
        "j.record_claim('b', 'document', {'job_id': 'b'})\n"
        "j.set_phase('a', 'converting')\n"
        "j.spool_result('b', {'success': True})\n"
        "j.record_submit_failure('b', 'down', retry_in=0)\n"
        "j.record_claim('c', 'audio', {'job_id': 'c'})\n"
        "j.spool_result('c', {'success': False})\n"
        "j.mark_delivered('c')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert proc.returncode == -9
    journal = Journal(tmp_path)
    assert journal.get("a").phase == "converting" and journal.get("a").attempts == 1
    assert journal.get("b").phase == "spooled" and journal.get("b").submit_tries == 1
    assert journal.get("c").phase == "delivered"


def test_lost_or_unreadable_journal_is_reported(tmp_path: Path) -> None:
    """The write marker outlives the journal file: a journal started anew says what was lost."""
    journal = Journal(tmp_path)
    journal.record_claim("a", "document", {"job_id": "a"})
    journal.close()
    for path in tmp_path.glob("journal.sqlite3*"):
        path.unlink()
    lost = Journal(tmp_path)
    assert lost.damage and "is missing although 1 claims" in lost.damage[0]
    lost.close()
    for path in tmp_path.glob("journal.sqlite3*"):
        path.unlink()
    (tmp_path / "journal.sqlite3").write_bytes(b"not a database" * 400)
    fresh = Journal(tmp_path)
    assert fresh.damage and "is unreadable" in fresh.damage[0]
    assert fresh.record_claim("b", "document", {"job_id": "b"})
    assert list(tmp_path.glob("journal.sqlite3.damaged-*"))
    fresh.close()
    assert Journal(tmp_path).damage == []


def test_a_journal_from_before_cancels_gains_the_columns_and_keeps_its_jobs(tmp_path: Path) -> None:
    """An agent upgraded in place opens the journal its older release wrote."""
    import sqlite3

    old = sqlite3.connect(tmp_path / "journal.sqlite3")
    old.executescript("""
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, content_type TEXT NOT NULL,
            job_json TEXT NOT NULL, phase TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            crashes INTEGER NOT NULL DEFAULT 0, result_json TEXT,
            submit_tries INTEGER NOT NULL DEFAULT 0, next_try_at REAL NOT NULL DEFAULT 0,
            last_error TEXT, claimed_at REAL NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO jobs(job_id, content_type, job_json, phase, claimed_at, updated_at)
            VALUES ('j1', 'audio', '{"job_id": "j1"}', 'converting', 1, 1);
    """)
    old.close()

    journal = Journal(tmp_path)
    [entry] = journal.interrupted()
    assert entry.job_id == "j1" and not entry.cancelled
    journal.record_cancel("j1", "wrong file")
    [entry] = journal.interrupted()
    assert entry.cancelled and entry.cancel_note == "wrong file"
    journal.close()
