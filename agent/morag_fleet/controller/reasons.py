"""A failed job's reason, as one of a few fixed classes.

Why: reasons are free text written by agents and converters (paths, sizes, exception texts), so
they cannot be metric labels or grouping keys as they are. The classes follow the ways a job ends
badly that an operator acts on differently. The first matching rule wins; what matches none is
"conversion" when a converter said it, else "other".
"""

from __future__ import annotations

REASON_CLASSES = ("cancelled", "aborted", "timeout", "memory", "crash", "disk", "download",
                  "unsupported", "poison", "refused", "conversion", "other")

# (class, lower-case markers); order matters: "cancelled (SIGKILL)" is not a crash
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cancelled", ("cancelled by operator",)),
    ("aborted", ("aborted:",)),
    ("poison", ("poison job", "times while processing this job")),
    ("timeout", ("timed out", "timeout")),
    ("memory", ("memory limit", "out of memory", "cannot allocate memory")),
    ("crash", ("crashed", "agent error:")),
    ("disk", ("no space left", "disk full", "disk quota")),
    ("download", ("download failed",)),
    ("unsupported", ("is not converted by this agent", "unsupported", "not supported")),
    ("refused", ("refused:", "discarded:", "dropped:")),
    ("conversion", ("converter error", "conversion", "convert", "transcript", "ocr")),
)


def reason_class(error: object) -> str:
    """One of REASON_CLASSES for a failure's text (None or empty text is "other")."""
    if not isinstance(error, str) or not error:
        return "other"
    text = error.lower()
    for name, markers in _RULES:
        if any(marker in text for marker in markers):
            return name
    return "other"
