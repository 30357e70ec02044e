"""`morag-fleet`: the operator's command. Each group of sub-commands registers itself from the
package that implements it, so optional parts (server, controller) import only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

# module path -> the function that adds its sub-commands to the parser
COMMAND_MODULES = (
    "morag_fleet.jobserver.cli",
    "morag_fleet.controller.cli",
    "morag_fleet.cli.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morag-fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
