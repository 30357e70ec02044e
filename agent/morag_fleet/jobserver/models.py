"""Request bodies of MoRAG's remote-jobs contract, validated by FastAPI (422 with a `detail`
list on bad input, exactly as MoRAG answers)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CreateJobRequest(BaseModel):
    source_file_path: str = Field(min_length=1)
    content_type: str = Field(min_length=1)
    ingestion_task_id: str
    task_options: dict[str, Any] = Field(default_factory=dict)


class SubmitResultRequest(BaseModel):
    success: bool
    content: str | None = None
    metadata: dict[str, Any] | None = None
    error_message: str | None = None
    processing_time: float | None = None


class FaultRule(BaseModel):
    """One injected fault: the next `count` requests (-1: all) whose method and path match get
    `status` (with `body`, `retry_after`), wait `delay` seconds first, or (downloads) have the
    connection cut after `drop_after_bytes` bytes of body."""

    method: str = "*"
    path_regex: str
    status: int | None = Field(default=None, ge=100, le=599)
    count: int = Field(default=1, ge=-1)
    retry_after: float | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0, le=600)
    body: Any = None
    drop_after_bytes: int | None = Field(default=None, ge=0)
