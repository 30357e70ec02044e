"""Request bodies of MoRAG's remote-jobs contract, validated by FastAPI (422 with a `detail`
list on bad input, exactly as MoRAG answers)."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator


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
    # JSON's 1e999 parses as infinity, which the database keeps and no answer can carry
    processing_time: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("metadata")
    @classmethod
    def _finite_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not _all_finite(value):
            raise ValueError("metadata must not hold infinite or NaN numbers")
        return value


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_all_finite(item) for item in value)
    return True


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

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _does_something(self) -> FaultRule:
        if self.status is None and self.delay is None and self.drop_after_bytes is None:
            raise ValueError("a rule needs status, delay or drop_after_bytes")
        return self
