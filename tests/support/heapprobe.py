"""Measures whether a process reuses memory it freed: the page faults of filling a large buffer
for the second time. Where freed memory went back to the kernel, every page faults again."""

from __future__ import annotations

import resource

BUFFER_BYTES = 64 * 2**20
PAGE_BYTES = 4096


def refault_pages() -> int:
    """Page faults while a freed 64 MiB buffer is allocated and filled again. A bytearray, as a
    plain malloc: numpy asks for transparent huge pages, which hides the faults."""
    first = bytearray(BUFFER_BYTES)  # malloc, then every byte written
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = bytearray(BUFFER_BYTES)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del again
    return faults
