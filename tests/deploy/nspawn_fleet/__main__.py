"""Boot the deploy-test hosts by hand and keep them up until Ctrl-C (for working on the roles):

    sudo .venv/bin/python -m tests.deploy.nspawn_fleet [--agents 2]    (from the repository root)

It prints the inventory and SSH config to use; everything is torn down on exit."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from .errors import HarnessError
from .fleet import DEFAULT_CACHE, Fleet


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="nspawn_fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    groups = {"morag_controller": ["ctl"],
              "morag_agents": [f"agent{i}" for i in range(1, args.agents + 1)]}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background
    try:
        with Fleet(groups, cache_dir=args.cache_dir) as fleet:
            print(f"inventory:  {fleet.inventory}\nssh config: {fleet.ssh_config}\n"
                  f"apt proxy:  {fleet.proxy.url if fleet.proxy else '-'}\nCtrl-C to tear down",
                  flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    except KeyboardInterrupt:
        return 130
    except HarnessError as exc:
        print(f"nspawn_fleet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
