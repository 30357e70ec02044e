#!/usr/bin/env python3
"""Writes the variables table of each role's README.md from its meta/argument_specs.yml.

Why: the argument specs are what ansible-playbook validates a role's input against, so they are
the one place a variable is described; the README tables are generated from them and a test
(tests/deploy/test_role_docs.py) fails when one is out of date.

    python ansible/tools/role_docs.py           # rewrite the tables
    python ansible/tools/role_docs.py --check   # exit 1 and name the stale READMEs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
BEGIN = "<!-- variables: generated from meta/argument_specs.yml by ansible/tools/role_docs.py -->"
END = "<!-- end of generated variables -->"


def cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def shown_default(name: str, spec: dict[str, Any], defaults: dict[str, Any]) -> str:
    if "default" in spec:
        value = spec["default"]
    elif name in defaults:
        value = defaults[name]
    else:
        return "required" if spec.get("required") else "none"
    if isinstance(value, str):
        return f"`{cell(value)}`" if value else "`''`"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"`{cell(text.removesuffix('...').strip())}`"


def entry_table(entry: str, spec: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    options = spec.get("options") or {}
    lines = [f"### Entry point `{entry}`", "", cell(spec.get("short_description", "")), ""]
    if not options:
        return [*lines, "No variables.", ""]
    lines += ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, option in options.items():
        kind = option.get("type", "str")
        if kind == "list" and "elements" in option:
            kind = f"list of {option['elements']}"
        if "choices" in option:
            kind += " (" + ", ".join(str(c) for c in option["choices"]) + ")"
        description = option.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        lines.append(f"| `{name}` | {kind} | {shown_default(name, option, defaults)} | "
                     f"{cell(description)} |")
    return [*lines, ""]


def section(role: Path) -> str:
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    defaults_file = role / "defaults/main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    lines = [BEGIN, ""]
    shared: dict[str, str] = {}
    for entry, spec in specs.items():
        key = yaml.safe_dump(spec.get("options"), sort_keys=True)
        if key in shared and spec.get("options"):  # an entry point taking the same variables
            lines += [f"### Entry point `{entry}`", "", cell(spec.get("short_description", "")),
                      "", f"Same variables as `{shared[key]}`.", ""]
            continue
        shared.setdefault(key, entry)
        lines += entry_table(entry, spec, defaults)
    return "\n".join([*lines, END])


def render(role: Path) -> str:
    readme = role / "README.md"
    if readme.exists():
        text = readme.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            return head + section(role) + rest.split(END, 1)[1]
        return text.rstrip("\n") + "\n\n## Variables\n\n" + section(role) + "\n"
    title = yaml.safe_load((role / "meta/main.yml").read_text())["galaxy_info"]["description"]
    return f"# Role `{role.name}`\n\n{title}.\n\n## Variables\n\n{section(role)}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale READMEs")
    args = parser.parse_args(argv)
    stale = []
    for role in sorted(p for p in ROLES.iterdir() if (p / "meta/argument_specs.yml").exists()):
        wanted = render(role)
        readme = role / "README.md"
        if not readme.exists() or readme.read_text() != wanted:
            stale.append(str(readme.relative_to(ROLES.parent)))
            if not args.check:
                readme.write_text(wanted)
    if args.check and stale:
        print("out of date (run python ansible/tools/role_docs.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
