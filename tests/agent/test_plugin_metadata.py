"""A plug-in converter's result gets a `mime_type` found in the content, not the download's
`Content-Type`: the reference job server, like MoRAG, serves every file as
`application/octet-stream` (jobserver/routes.py, `download`).

Real parts: the reference job server process, a real agent process, the plug-in converter from
tests/support/scripted_converters.py loaded through the agent's plug-in syntax.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.support.agent_proc import AgentProcess, wait_until
from tests.support.jobserver import JobServer

from morag_fleet.agent.selftest import SAMPLES_DIR

BARE = "tests.support.scripted_converters:BareConverter"


def test_a_plugin_result_carries_the_type_found_in_the_content(
        tmp_path: Path, jobserver: JobServer, make_agent: Callable[..., AgentProcess]) -> None:
    files = tmp_path / "files"
    files.mkdir()
    pdf = files / "quarterly-report"  # no extension: only the bytes say PDF
    shutil.copyfile(SAMPLES_DIR / "sample.pdf", pdf)
    png = files / "scan.txt"  # a misleading extension: the bytes say PNG
    shutil.copyfile(SAMPLES_DIR / "text.png", png)
    blob = files / "blob"  # nothing to detect: the header's type stays
    blob.write_bytes(b"\x00\x01\x02 no known signature \x00" * 8)

    jobs = {jobserver.upload(pdf, "document"): "application/pdf",
            jobserver.upload(png, "image"): "image/png",
            jobserver.upload(blob, "document"): "application/octet-stream"}

    make_agent(jobserver.url, "plugin-meta", slots=1, content_types=("document", "image"),
               converters={"document": BARE, "image": BARE})
    wait_until(lambda: all(jobserver.status(j)["status"] == "completed" for j in jobs), 60,
               "the three jobs done")
    for job_id, expected in jobs.items():
        metadata = jobserver.result(job_id)["metadata"]
        assert metadata["converter"] == "bare"  # the plug-in's own result, not a built-in's
        assert metadata["mime_type"] == expected, (job_id, metadata)
