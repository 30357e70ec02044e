"""Agent-supplied text on the operator's terminal and in JSON output.

Host names, versions, event fields and the like come from agents, so they may hold terminal
control sequences (`ESC [ 2J` clears the screen, others retitle the window or fake output).
`clean` makes one value safe for a text view: every character that is not printable (C0 and C1
controls, DEL, line breaks, bidirectional overrides and other format characters) becomes a
visible escape such as `\\x1b`, so the operator sees that something odd was sent and nothing acts
on the terminal. Every text renderer goes through it: `views.table` cleans each cell and the CLI
passes each line it prints through `screen`. JSON output keeps the text as it was (the JSON
encoder escapes control characters), and `json_text` writes a number JSON cannot hold (NaN, an
infinity, only in records stored before intake refused them) as null, so the output stays valid.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(value: Any) -> str:
    """`str(value)` with every non-printable character written as a visible escape."""
    text = value if type(value) is str else str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def screen(text: str) -> str:
    """Multi-line output made safe line by line: the line breaks stay, nothing else acts."""
    return "\n".join(clean(line) for line in text.split("\n"))


def _finite(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is dict:
        return {key: _finite(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return [_finite(item) for item in value]
    return value


def json_text(data: Any, indent: int | None = None) -> str:
    """Valid JSON whatever the data holds: non-finite numbers become null."""
    try:
        return json.dumps(data, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(data), indent=indent, allow_nan=False)
