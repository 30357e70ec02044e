"""`python -m morag_fleet.jobserver jobserver|submit ...`: the same sub-commands as
`morag-fleet`, without importing the rest of the fleet (handy where only the server extra is
installed)."""

from __future__ import annotations

import sys

from morag_fleet.cli.fleet_main import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], "python -m morag_fleet.jobserver", ("morag_fleet.jobserver.cli",)))
