"""Bearer tokens for the job server and `submit`, read from a file when possible: a token given
as a flag is in /proc/<pid>/cmdline, which every local user can read."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from morag_fleet.settings_rules import read_secret_file


def resolve_token(flag_value: str | None, flag_file: str | None, env_name: str,
                  environ: Mapping[str, str] | None = None, what: str = "--token") -> str | None:
    """The token from the flag, its file flag, `env_name` or `<env_name>_FILE`, in that order;
    `ValueError` names the file that cannot be used. The flag form earns a warning."""
    environ = os.environ if environ is None else environ
    if flag_value and flag_file:
        raise ValueError(f"give {what} or {what}-file, not both")
    if flag_value:
        print(f"warning: {what} shows the token in the process list to every local user; "
              f"use {what}-file or {env_name}_FILE", file=sys.stderr)
        return flag_value
    path = flag_file or environ.get(f"{env_name}_FILE")
    if path:
        return read_token_file(path)
    return environ.get(env_name) or None


def read_token_file(path: str) -> str:
    try:
        return read_secret_file(path)
    except ValueError as exc:
        raise ValueError(f"token file: {exc}") from None
