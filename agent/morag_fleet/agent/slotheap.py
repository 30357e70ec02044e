"""The slot process keeps the memory it frees, so converters reuse it instead of faulting in
fresh pages for every buffer.

CTranslate2 allocates its large per-batch buffers (attention scores, layer outputs) anew for each
piece it decodes. glibc serves allocations that large with a fresh `mmap` and returns them with
`munmap` on free, so the kernel zeroes and maps every page again for the next batch: on the
benchmark host that kernel time was a large share of a slot's transcription time
(docs/transcription.md, "Slot memory"). A slot process is long-lived and does one job at a time,
so keeping freed memory in one heap costs nothing but the peak it already reached:

- `M_MMAP_MAX = 0`: large blocks come from the heap, where freed ones are reused;
- `M_ARENA_MAX = 1`: every thread uses the main heap, which can grow to any size (a thread's own
  arena is capped, so its large blocks would go back to `mmap`);
- `M_TRIM_THRESHOLD`: freed memory at the heap's top stays mapped unless it exceeds this.

The slot's memory limit still watches its RSS, which now stays at the peak of its largest job
until the slot is recycled. glibc only: elsewhere (musl) nothing changes. Tools the converters
start (ffmpeg, tesseract) are separate processes and keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

from morag_fleet.log import get_logger

log = get_logger(__name__)

# mallopt() parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Called first thing in a slot process, before any converter allocates. True when glibc
    took every setting."""
    mallopt = _mallopt()
    if mallopt is None:
        log.debug("slot_heap_default", reason="no glibc mallopt")
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    accepted = all(mallopt(param, value) == 1 for param, value in settings)
    if not accepted:
        log.warning("slot_heap_default", reason="glibc refused a mallopt setting")
    return accepted


def _mallopt() -> Callable[[int, int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt  # type: ignore[no-any-return]
