"""Where the dashboard listens, under which URL prefix, and the token that unlocks its actions."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from morag_fleet.log import register_secret
from morag_fleet.settings_rules import read_secret_file

MIN_TOKEN_CHARS = 16  # a short token is guessable over the network


class TokenFileError(ValueError):
    """The dashboard token file cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class WebOptions:
    port: int | None = None
    addr: str = "127.0.0.1"
    url_prefix: str = ""
    token_file: Path | None = None


def normalise_prefix(prefix: str | None) -> str:
    """'/fleet/' and 'fleet' both become '/fleet'; nothing or '/' becomes ''."""
    text = (prefix or "").strip().strip("/")
    if any(c in text for c in "?#\\\"'<> ") or ".." in text.split("/"):
        raise ValueError(f"url prefix {prefix!r} must be a plain path such as /fleet")
    return "/" + text if text else ""


def read_token(path: Path) -> str:
    """The token from a file only its owner may read: a token anyone on the host can read
    would let anyone act on the fleet, so a looser mode is refused rather than warned about."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise TokenFileError(f"dashboard token file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(f"dashboard token file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenFileError(f"dashboard token file {path} has mode {mode:04o}; it must be "
                             f"readable by its owner only (chmod 600 {path})")
    try:
        token = read_secret_file(str(path))
    except ValueError as exc:
        raise TokenFileError(f"dashboard token file: {exc}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenFileError(f"dashboard token in {path} is shorter than {MIN_TOKEN_CHARS} "
                             "characters (make one with `openssl rand -hex 32`)")
    register_secret(token)
    return token
