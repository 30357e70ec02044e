"""Poll answers checked at the boundary; results round-tripping through the outbox's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from morag_fleet.jobs.errors import ApiProtocolError
from morag_fleet.jobs.models import Job, JobResult

GOOD = {"job_id": "2b1f7a5e-6d1c-4c8e-9d0b-1f0f3a6b7c8d",
        "source_file_url": "/api/v1/remote-jobs/2b1f7a5e-6d1c-4c8e-9d0b-1f0f3a6b7c8d/download",
        "content_type": "audio", "task_options": {"language": "de"}}


def test_a_job_is_read_with_its_options() -> None:
    job = Job.from_poll(GOOD)
    assert job == Job(GOOD["job_id"], GOOD["source_file_url"], "audio", {"language": "de"})
    assert job.lease_seconds is None
    assert Job.from_poll({**GOOD, "lease_seconds": 30}).lease_seconds == 30.0
    assert Job.from_poll({**GOOD, "task_options": None}).task_options == {}


def test_no_job_is_all_nulls() -> None:
    assert Job.from_poll(dict.fromkeys(GOOD)) is None
    assert Job.from_poll({"job_id": None}) is None


@pytest.mark.parametrize(("data", "complaint"), [
    ([GOOD], "JSON object"),
    ("null", "JSON object"),
    ({"jobs": []}, "none of job_id"),
    ({**GOOD, "job_id": None}, "job_id"),
    ({**GOOD, "job_id": 42}, "job_id"),
    ({**GOOD, "job_id": "../../admin"}, "unsafe"),
    ({**GOOD, "job_id": "a/b"}, "unsafe"),
    ({**GOOD, "job_id": "x" * 500}, "job_id"),
    ({k: v for k, v in GOOD.items() if k != "content_type"}, "content_type"),
    ({**GOOD, "content_type": ["audio"]}, "content_type"),
    ({**GOOD, "source_file_url": "file:///etc/passwd"}, "source_file_url"),
    ({**GOOD, "source_file_url": ""}, "source_file_url"),
    ({**GOOD, "task_options": "fast"}, "task_options"),
    ({**GOOD, "lease_seconds": "soon"}, "lease_seconds"),
    ({**GOOD, "lease_seconds": -1}, "lease_seconds"),
    ({**GOOD, "lease_seconds": True}, "lease_seconds"),
])
def test_malformed_answers_raise_a_clear_protocol_error(data: Any, complaint: str) -> None:
    with pytest.raises(ApiProtocolError) as caught:
        Job.from_poll(data)
    assert complaint in str(caught.value)


def test_result_json_round_trip_drops_keys_morag_owns() -> None:
    result = JobResult(success=True, content="# Doc", processing_time=1.5,
                       metadata={"content_type": "document", "source_path": "/tmp/x",
                                 "remote_job_id": "j", "file_name": "a.pdf"})
    body = result.to_json()
    assert body == {"success": True, "content": "# Doc", "processing_time": 1.5,
                    "metadata": {"content_type": "document", "file_name": "a.pdf"}}
    assert JobResult.from_json(body) == JobResult(
        success=True, content="# Doc", processing_time=1.5,
        metadata={"content_type": "document", "file_name": "a.pdf"})
    failed = JobResult(success=False, error_message="corrupt PDF")
    assert failed.to_json() == {"success": False, "error_message": "corrupt PDF"}
    assert JobResult.from_json(failed.to_json()) == failed
    with pytest.raises(ValueError):
        JobResult.from_json({"content": "x"})
