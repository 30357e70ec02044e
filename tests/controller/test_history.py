"""The controller's job history on a real SQLite file: rows kept from job events as agents send
them, timelines with seconds per phase, filters, failures by reason, retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from morag_fleet.controller.history import History
from morag_fleet.controller.reasons import REASON_CLASSES, reason_class
from morag_fleet.controller.store import PendingEvent, Retention, Store

T0 = 1_700_000_000.0


def job_event(agent: str, ts: float, job_id: str, name: str, **fields) -> PendingEvent:
    return PendingEvent(agent, ts, {"scope": "job", "name": name, "job_id": job_id, **fields})


def agent_event(agent: str, ts: float, name: str, **fields) -> PendingEvent:
    return PendingEvent(agent, ts, {"scope": "agent", "name": name, **fields})


def a_job(agent: str, job_id: str, start: float, content_type: str = "document",
          error: str | None = None) -> list[PendingEvent]:
    """The events one job sends, as the agent's runner and delivery send them."""
    end = "failed" if error else "completed"
    return [job_event(agent, start, job_id, "claimed", content_type=content_type),
            job_event(agent, start + 1, job_id, "downloading"),
            job_event(agent, start + 2, job_id, "converting", progress=0.0),
            job_event(agent, start + 3, job_id, "converting", progress=0.5),
            job_event(agent, start + 4, job_id, "converting", progress=0.9),
            job_event(agent, start + 6, job_id, "spooled", success=error is None, error=error,
                      content_type=content_type, download_s=0.75, convert_s=3.5),
            job_event(agent, start + 8, job_id, end, error=error, duration=6.0,
                      content_type=content_type, deliver_s=1.5)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "controller.sqlite", Retention(max_age_s=3600, max_events=1000))


@pytest.fixture
def history(store: Store) -> History:
    return History(store.path)


def test_a_jobs_timeline_folds_progress_and_times_each_phase(store: Store,
                                                             history: History) -> None:
    store.record_events(a_job("a1", "j1", T0), {}, now=T0 + 8)
    timeline = history.job_timeline("j1")
    assert [e["name"] for e in timeline["events"]] == [
        "claimed", "downloading", "converting", "spooled", "completed"]
    converting = timeline["events"][2]
    assert converting["progress"] == 0.9 and converting["updates"] == 2
    # the agent's own measures where it sent them; the wait from the event times
    assert timeline["phases"] == {"wait": 1.0, "download": 0.75, "convert": 3.5,
                                  "deliver": 1.5}
    job = timeline["job"]
    assert (job["state"], job["agent"], job["content_type"], job["active"]) == (
        "completed", "a1", "document", False)
    assert (job["claimed"], job["finished"], job["duration_s"]) == (T0, T0 + 8, 6.0)
    assert job["error"] is None and job["reason"] is None


def test_phases_without_agent_timings_come_from_event_times(store: Store,
                                                           history: History) -> None:
    events = [job_event("a1", T0, "old", "claimed", content_type="audio"),
              job_event("a1", T0 + 2, "old", "downloading"),
              job_event("a1", T0 + 5, "old", "converting"),
              job_event("a1", T0 + 15, "old", "spooled", success=True),
              job_event("a1", T0 + 16, "old", "completed")]
    store.record_events(events, {})
    assert history.job_timeline("old")["phases"] == {"wait": 2.0, "download": 3.0,
                                                     "convert": 10.0, "deliver": 1.0}


def test_a_running_job_has_no_end_phases_yet(store: Store, history: History) -> None:
    store.record_events(a_job("a1", "run", T0)[:4], {})
    timeline = history.job_timeline("run")
    assert timeline["phases"]["convert"] is None and timeline["phases"]["deliver"] is None
    assert timeline["job"]["active"] and timeline["job"]["progress"] == 0.5


def test_job_lists_filter_by_state_type_agent_and_age(store: Store, history: History) -> None:
    store.record_events([*a_job("a1", "doc-ok", T0), *a_job("a2", "img-bad", T0 + 10, "image",
                                                              error="download failed: 404"),
                         *a_job("a2", "aud-run", T0 + 20, "audio")[:3]], {})
    everything = history.jobs(now=T0 + 30)
    assert [j["job_id"] for j in everything] == ["aud-run", "img-bad", "doc-ok"]
    assert [j["job_id"] for j in history.jobs(state="active")] == ["aud-run"]
    assert [j["job_id"] for j in history.jobs(state="finished")] == ["img-bad", "doc-ok"]
    assert [j["job_id"] for j in history.jobs(state="failed")] == ["img-bad"]
    assert [j["job_id"] for j in history.jobs(content_type="document")] == ["doc-ok"]
    assert [j["job_id"] for j in history.jobs(agent="a2")] == ["aud-run", "img-bad"]
    assert [j["job_id"] for j in history.jobs(max_age_s=15, now=T0 + 30)] == [
        "aud-run", "img-bad"]
    assert history.jobs(limit=1)[0]["job_id"] == "aud-run"


def test_failures_are_grouped_by_reason_class_with_agents_and_types(
        store: Store, history: History) -> None:
    store.record_events([
        *a_job("a1", "f1", T0, error="conversion timed out after 600 s"),
        *a_job("a2", "f2", T0 + 10, "audio", error="conversion timed out after 900 s"),
        *a_job("a2", "f3", T0 + 20, "audio", error="cancelled by operator: wrong file"),
        *a_job("a1", "ok", T0 + 30)], {})
    groups = history.failures(max_age_s=3600, now=T0 + 60)
    assert [(g["reason"], g["count"]) for g in groups] == [("timeout", 2), ("cancelled", 1)]
    timeouts = groups[0]
    assert timeouts["agents"] == {"a1": 1, "a2": 1}
    assert timeouts["content_types"] == {"document": 1, "audio": 1}
    assert timeouts["example"] == "conversion timed out after 900 s"  # the newest
    assert timeouts["example_job"] == "f2"
    recent = history.recent_failures(max_age_s=3600, now=T0 + 60)
    assert [j["job_id"] for j in recent] == ["f3", "f2", "f1"]
    assert history.finished_counts(max_age_s=3600, now=T0 + 60) == {
        "document": {"completed": 1, "failed": 1}, "audio": {"completed": 0, "failed": 2}}
    assert history.failures(max_age_s=10, now=T0 + 60) == []


def test_a_later_claim_takes_the_row_and_the_old_holder_cannot_overwrite_it(
        store: Store, history: History) -> None:
    store.record_events(a_job("a1", "moved", T0)[:3], {})
    store.record_events(a_job("a2", "moved", T0 + 100), {})
    # the first holder comes back from a network split and says it failed the job
    store.record_events([job_event("a1", T0 + 120, "moved", "failed", error="late")], {})
    job = history.job("moved")
    assert (job["agent"], job["state"], job["error"], job["claimed"]) == (
        "a2", "completed", None, T0 + 100)
    agents = {e["agent"] for e in history.job_timeline("moved")["events"]}
    assert agents == {"a1", "a2"}  # the timeline still tells the whole story


def test_agent_history_lists_state_changes_newest_first(store: Store, history: History) -> None:
    store.record_events([agent_event("a1", T0, "started"),
                         agent_event("a1", T0 + 1, "hello", by="controller"),
                         agent_event("a1", T0 + 2, "paused", note="driver update"),
                         agent_event("a1", T0 + 3, "telemetry_noise"),
                         agent_event("a2", T0 + 4, "lost", by="controller"),
                         agent_event("a1", T0 + 5, "resumed")], {})
    changes = history.agent_history("a1")
    assert [c["name"] for c in changes] == ["resumed", "paused", "hello", "started"]
    assert changes[1]["body"]["note"] == "driver update"


def test_retention_drops_old_job_rows_with_their_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.sqlite", Retention(max_age_s=100, max_events=1000))
    store.record_events(a_job("a1", "old", T0), {}, now=T0)
    store.record_events(a_job("a1", "new", T0 + 500), {}, now=T0 + 500)
    store.apply_retention(now=T0 + 550)
    history = History(store.path)
    assert [j["job_id"] for j in history.jobs()] == ["new"]
    assert history.job_timeline("old") == {"job": None, "events": [], "phases": {
        "wait": None, "download": None, "convert": None, "deliver": None}}


def test_the_job_row_count_is_capped_like_the_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.sqlite", Retention(max_age_s=10**9, max_events=3))
    for i in range(5):
        store.record_events([job_event("a1", T0 + i, f"j{i}", "claimed")], {}, now=T0 + i)
    store.apply_retention(now=T0 + 10)
    assert [j["job_id"] for j in History(store.path).jobs()] == ["j4", "j3", "j2"]


def test_history_rows_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    first = Store(path)
    first.record_events(a_job("a1", "kept", T0), {})
    first.close()
    second = Store(path)
    assert History(second.path).job("kept")["state"] == "completed"


@pytest.mark.parametrize(("error", "expected"), [
    ("cancelled by operator: wrong file", "cancelled"),
    ("cancelled by operator", "cancelled"),
    ("aborted: the agent was shut down before the conversion finished", "aborted"),
    ("conversion timed out after 600 s", "timeout"),
    ("conversion exceeded the memory limit (900 MB > 512 MB)", "memory"),
    ("converter process crashed (signal SIGSEGV)", "crash"),
    ("agent error: KeyError: 'x'", "crash"),
    ("[Errno 28] No space left on device", "disk"),
    ("download failed: 404 not found", "download"),
    ("content type 'x' is not converted by this agent (it converts: document)", "unsupported"),
    ("the agent stopped 3 times while processing this job; giving up (poison job?)", "poison"),
    ("refused: 409 another worker holds the job", "refused"),
    ("converter error: ValueError: bad", "conversion"),
    ("the transcript contradicts its audio", "conversion"),
    ("something nobody expected", "other"),
    ("", "other"),
    (None, "other"),
])
def test_reason_classes(error: str | None, expected: str) -> None:
    assert reason_class(error) == expected
    assert expected in REASON_CLASSES


def test_a_history_from_before_job_rows_gets_them_from_its_events(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    old = Store(path)
    old.record_events([*a_job("a1", "before", T0, error="download failed: 404"),
                       agent_event("a1", T0 + 9, "paused")], {})
    old.db.execute("DROP TABLE jobs")  # as a controller of the previous version left it
    old.close()
    upgraded = Store(path)
    job = History(upgraded.path).job("before")
    assert (job["state"], job["reason"], job["download_s"]) == ("failed", "download", 0.75)
    upgraded.record_events(a_job("a1", "after", T0 + 100), {})
    upgraded.close()
    assert [j["job_id"] for j in History(Store(path).path).jobs()] == ["after", "before"]


def test_a_jobs_row_follows_progress_in_steps_and_its_timeline_to_the_end(
        store: Store, history: History) -> None:
    events = [job_event("a1", T0, "fine", "claimed", content_type="audio"),
              job_event("a1", T0 + 1, "fine", "converting", progress=0.0)]
    events += [job_event("a1", T0 + 1 + i, "fine", "converting", progress=i / 100)
               for i in range(1, 8)]
    store.record_events(events, {})
    assert history.job("fine")["progress"] == 0.0  # under a step from the last written
    assert history.job_timeline("fine")["events"][-1]["progress"] == 0.07
    store.record_events([job_event("a1", T0 + 20, "fine", "converting", progress=0.3)], {})
    assert history.job("fine")["progress"] == 0.3
    store.record_events([job_event("a1", T0 + 21, "fine", "converting", progress=1.0)], {})
    assert history.job("fine")["progress"] == 1.0  # the end of a conversion always shows
