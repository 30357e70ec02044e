"""Converters that misbehave on purpose, selected through the agent's plug-in syntax
(`converters: {document: "tests.support.scripted_converters:ScriptedConverter"}`).

The source file's first line says what to do, so one agent can be handed good and bad jobs:
`segfault`, `hang` (also starts a child `sleep` to prove the whole group is killed),
`eat-memory`, `eat-memory-in-child` (a child tool does), `sleep <seconds>`,
`sleep-ignoring-term <seconds>` (the slot ignores SIGTERM, so only SIGKILL ends it early), `raise`,
`reuse-memory` (reports the page faults of refilling a freed buffer as `refault_pages`);
anything else is converted like plain text.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from morag_fleet.convert.base import Availability, ConversionError, ConversionResult
from morag_fleet.convert.text import TextConverter
from tests.support.heapprobe import refault_pages

PIDFILE_ENV = "MORAG_TEST_PIDFILE"


class ScriptedConverter:
    name = "scripted"

    def __init__(self) -> None:
        self._text = TextConverter()
        self.jobs_seen = 0  # proves the instance (a "loaded model") survives between jobs

    def available(self) -> Availability:
        return Availability(True)

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: Any) -> ConversionResult:
        self.jobs_seen += 1
        command = source.read_text(errors="replace").splitlines()[0:1]
        action = command[0].strip() if command else ""
        if action == "segfault":
            ctypes.string_at(0)
        if action == "hang":
            child = subprocess.Popen(["sleep", "1000"])
            pidfile = os.environ.get(PIDFILE_ENV)
            if pidfile:
                Path(pidfile).write_text(str(child.pid))
            while True:
                time.sleep(1)
        if action == "eat-memory":
            hog = []
            while True:
                hog.append(bytearray(32 * 2**20))
                time.sleep(0.01)
        if action == "eat-memory-in-child":
            hog = ("import time\nhog = []\nwhile True:\n"
                   "    hog.append(bytearray(32 * 2**20))\n    time.sleep(0.01)\n")
            subprocess.run(["python3", "-c", hog], check=False)
            raise ConversionError("the memory-eating child tool ended on its own")
        if action.startswith("sleep-ignoring-term "):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            action = "sleep " + action.split()[1]
        if action.startswith("sleep "):
            seconds = float(action.split()[1])
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                progress(1 - (end - time.monotonic()) / seconds, "sleeping")
                time.sleep(0.1)
        if action == "raise":
            raise ConversionError("the scripted converter was told to fail")
        result = self._text.convert(source, options, job_info, progress)
        metadata = dict(result.metadata, slot_pid=os.getpid(), jobs_seen=self.jobs_seen,
                        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
        if action == "reuse-memory":
            metadata["refault_pages"] = refault_pages()
        return ConversionResult(result.markdown, metadata)


class BareConverter:
    """A plug-in as third parties write them: markdown and a few keys of its own, none of the
    keys every result needs (`mime_type` included), so the agent fills those in."""

    name = "bare"

    def available(self) -> Availability:
        return Availability(True)

    def convert(self, source: Path, options: Mapping[str, Any], job_info: Mapping[str, Any],
                progress: Any) -> ConversionResult:
        size = source.stat().st_size
        return ConversionResult(f"# {job_info.get('file_name')}\n\n{size} bytes\n",
                                {"converter": "bare"})
