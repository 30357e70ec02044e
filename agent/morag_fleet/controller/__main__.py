"""`python -m morag_fleet.controller controller|keys|status|...`: the controller's sub-commands of
`morag-fleet` without importing the rest of the fleet (where only the controller is installed)."""

from __future__ import annotations

import sys

from morag_fleet.cli.fleet_main import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], "python -m morag_fleet.controller", ("morag_fleet.controller.cli",)))
