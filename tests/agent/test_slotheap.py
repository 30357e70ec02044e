"""A slot process keeps the memory it frees (agent/slotheap.py), so a converter that allocates
large buffers job after job, as CTranslate2 does per batch, does not fault every page in again."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.agent_proc import REPO_ROOT, wait_until
from tests.support.heapprobe import BUFFER_BYTES, PAGE_BYTES

PAGES = BUFFER_BYTES // PAGE_BYTES
PROBE = ("import json, sys\n"
         "from tests.support.heapprobe import refault_pages\n"
         "if sys.argv[1] == 'slot':\n"
         "    from morag_fleet.agent.slotheap import keep_freed_memory\n"
         "    assert keep_freed_memory()\n"
         "print(json.dumps(refault_pages()))\n")


def probe(setup: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, setup], capture_output=True, text=True,
                          check=True, cwd=REPO_ROOT)
    return int(json.loads(done.stdout))


def test_the_probe_sees_freed_memory_fault_again_at_glibc_defaults() -> None:
    """The control: without the slot's settings the refilled buffer faults nearly every page,
    so the slot test below can fail."""
    assert probe("defaults") > PAGES // 2


def test_with_the_slot_settings_freed_memory_is_reused() -> None:
    assert probe("slot") < PAGES // 20


def test_a_real_slot_process_reuses_freed_memory(jobserver, make_agent, make_doc) -> None:
    job_id = jobserver.upload(make_doc("heap.txt", "reuse-memory\nbody"), "document")
    make_agent(jobserver.url, slots=1)
    status = wait_until(lambda: (s := jobserver.status(job_id))["status"]
                        in ("completed", "failed") and s, 120, "job done")
    assert status["status"] == "completed", status
    metadata = jobserver.result(job_id)["metadata"]
    assert metadata["refault_pages"] < PAGES // 20, metadata
