"""What the shipped rules and dashboard refer to: metric names in PromQL expressions, and the
names a controller's /metrics page exports."""

from __future__ import annotations

import re

# functions and aggregations are told apart by the "(" that follows them; these are the words
# PromQL uses between operands
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "counter": ("", "_created"),
             "gauge": ("",)}


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (not its functions, labels or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        word = match.group()
        if text[match.end():].lstrip().startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page can show, from its TYPE lines (so a labelled metric
    counts even before its first sample)."""
    names = set()
    for name, kind in _TYPE_LINE.findall(exposition):
        base = name.removesuffix("_total") if kind == "counter" else name
        for suffix in _SUFFIXES.get(kind, ("",)):
            names.add(name if kind == "counter" and suffix == "" else base + suffix)
    return names
