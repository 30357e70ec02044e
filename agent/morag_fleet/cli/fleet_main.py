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


def build_parser(prog: str = "morag-fleet",
                 modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(sub)
    return parser


def run(argv: list[str] | None, prog: str, modules: tuple[str, ...]) -> int:
    """Also the entry of `python -m morag_fleet.<part>`, which names only its own module so a
    host with just that part installed never imports the others."""
    args = build_parser(prog, modules).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    return run(argv, "morag-fleet", COMMAND_MODULES)


if __name__ == "__main__":
    sys.exit(main())
