"""Running host commands with errors that show what failed (the harness shells out a lot)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from .errors import HarnessError


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 600.0,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; a failure raises with the command and its stderr."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              input=input_text, check=False)
    except FileNotFoundError:
        raise HarnessError(f"{argv[0]} is not installed; run `bash .ci/bootstrap`") from None
    if check and done.returncode != 0:
        raise HarnessError(f"`{' '.join(argv)}` failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise HarnessError(f"missing tools {', '.join(missing)}; run `bash .ci/bootstrap` "
                           "(it installs debootstrap, systemd-container, apt-cacher-ng, iproute2)")
