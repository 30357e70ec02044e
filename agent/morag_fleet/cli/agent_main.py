"""`morag-agent`: run the agent, check the host, or manage its config.

Sub-commands: run (the default), check, create-config, show-config, test-connection. The flags
of MoRAG's own remote converter (`--create-config`, `--test-connection`, `--max-jobs`, ...) keep
working.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from morag_fleet.agent.mp_tracker import stop_resource_tracker
from morag_fleet.log import configure_logging
from morag_fleet.settings import (
    DEFAULT_CONFIG_FILE,
    LOG_LEVELS,
    AgentSettings,
    SettingsError,
    load_settings,
    sample_config,
)

COMMANDS = ("run", "check", "create-config", "show-config", "test-connection")
# flag dest -> settings key
FLAG_KEYS = {
    "worker_id": "worker_id", "api_url": "api_base_url", "api_key": "api_key",
    "api_key_file": "api_key_file",
    "content_types": "content_types", "poll_interval": "poll_interval",
    "max_jobs": "max_concurrent_jobs", "log_level": "log_level", "state_dir": "state_dir",
    "temp_dir": "temp_dir", "controller": "controller",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morag-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=COMMANDS, default="run")
    parser.add_argument("--config", "-c", help="YAML config file (default: $MORAG_CONFIG, "
                        f"else ./{DEFAULT_CONFIG_FILE} when present)")
    parser.add_argument("--worker-id", help="unique worker identifier")
    parser.add_argument("--api-url", help="MoRAG API base URL")
    parser.add_argument("--api-key", help="API bearer token (visible to every local user in "
                        "the process list: prefer --api-key-file)")
    parser.add_argument("--api-key-file", help="file holding the API bearer token "
                        "(env MORAG_API_KEY_FILE)")
    parser.add_argument("--content-types", help="comma-separated content types to process")
    parser.add_argument("--poll-interval", type=float, help="longest idle wait between polls (s)")
    parser.add_argument("--max-jobs", type=int, help="concurrent jobs (slots)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper)
    parser.add_argument("--state-dir", help="journal and outbox directory")
    parser.add_argument("--temp-dir", help="per-job download directory root")
    parser.add_argument("--controller", help="fleet controller endpoint, tcp://host:port")
    parser.add_argument("--create-config", action="store_true",
                        help="write a sample config (same as the create-config command)")
    parser.add_argument("--test-connection", action="store_true",
                        help="test the API connection and exit")
    parser.add_argument("--output", "-o", help="create-config: file to write "
                        f"(default {DEFAULT_CONFIG_FILE}.example)")
    parser.add_argument("--json", action="store_true", help="check/show-config: JSON output")
    parser.add_argument("--offline", action="store_true",
                        help="check: skip the API and controller checks")
    parser.add_argument("--selftest", action="store_true",
                        help="check: also convert a shipped sample of every content type and "
                        "compare the output with its known text")
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, dest) for dest, key in FLAG_KEYS.items()}


def cmd_create_config(args: argparse.Namespace) -> int:
    target = Path(args.output or f"{DEFAULT_CONFIG_FILE}.example")
    if target.exists():
        print(f"error: {target} exists; not overwriting", file=sys.stderr)
        return 1
    target.write_text(sample_config(), encoding="utf-8")
    print(f"Sample configuration created: {target}")
    return 0


def cmd_show_config(settings: AgentSettings, args: argparse.Namespace) -> int:
    from morag_fleet.cpu import cpu_budget

    data = settings.redacted()
    data["cpu_budget"] = cpu_budget(settings.max_concurrent_jobs, settings.slot_threads).as_dict()
    print(json.dumps(data, indent=2) if args.json else yaml.safe_dump(data, sort_keys=False))
    return 0


def cmd_test_connection(settings: AgentSettings) -> int:
    from morag_fleet.jobs.probe import probe_configured_api

    report = probe_configured_api(settings)
    print(f"{settings.api_base_url}: {report.kind}: {report.message}")
    return 0 if report.ok else 1


def cmd_check(settings: AgentSettings, args: argparse.Namespace) -> int:
    from morag_fleet.agent.preflight import healthy, run_checks

    results = run_checks(settings, include_network=not args.offline)
    verdict = healthy(results)
    selftest = _selftest(settings) if args.selftest else {}
    failed = [name for name, result in selftest.items() if not result["ok"]]
    verdict = verdict and not failed
    if args.json:
        report = {"healthy": verdict, "checks": [r.__dict__ for r in results]}
        if args.selftest:
            report |= {"selftest": selftest, "selftest_failed": failed}
        print(json.dumps(report, indent=2))
    else:
        for r in results:
            mark = "ok  " if r.ok else ("FAIL" if r.required else "warn")
            print(f"[{mark}] {r.name}: {r.detail}")
        for line in _selftest_lines(selftest):
            print(line)
        if failed:
            print(f"self-test FAILED for: {', '.join(failed)}")
        print("healthy" if verdict else "NOT healthy")
    return 0 if verdict else 1


def _selftest(settings: AgentSettings) -> dict[str, dict[str, Any]]:
    from morag_fleet.agent.selftest import check_selftest

    return {name: result.as_dict() for name, result in check_selftest(settings).items()}


def _selftest_lines(selftest: dict[str, dict[str, Any]]) -> list[str]:
    """One line per type: verdict, score, seconds, and why when it failed."""
    lines = []
    for name, r in selftest.items():
        mark = "skip" if r["skipped"] else ("pass" if r["ok"] else "FAIL")
        measured = f"{r['metric']} {r['score']:.3f}, " if r["score"] is not None else ""
        why = f": {r['reason']}" if r["reason"] else ""
        lines.append(f"[{mark}] selftest {name}: {measured}{r['seconds']:.2f} s{why}")
    return lines


def cmd_run(settings: AgentSettings) -> int:
    import sqlite3

    from morag_fleet.agent.agent import Agent
    from morag_fleet.agent.statedir import journal_error, state_dir_problem

    problem = state_dir_problem(settings.state_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        agent = Agent(settings, install_signals=True)
    except sqlite3.Error as exc:  # only the journal speaks SQLite while the agent is built
        print(f"error: {journal_error(settings.state_dir, exc)}", file=sys.stderr)
        return 1
    if not agent.content_types:
        print("error: no configured content type can be converted on this host; "
              "run `morag-agent check --selftest` to see why", file=sys.stderr)
        return 2
    return agent.run()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command
    if args.create_config:
        command = "create-config"
    elif args.test_connection:
        command = "test-connection"
    if command == "create-config":
        return cmd_create_config(args)
    if args.api_key:
        print("warning: --api-key shows the key in the process list to every local user; "
              "use --api-key-file or MORAG_API_KEY_FILE", file=sys.stderr)
    try:
        settings = load_settings(args.config, _flags(args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, worker_id=settings.worker_id)
    if command == "show-config":
        return cmd_show_config(settings, args)
    if command == "test-connection":
        return cmd_test_connection(settings)
    try:
        if command == "check":
            return cmd_check(settings, args)
        return cmd_run(settings)
    finally:
        stop_resource_tracker()


if __name__ == "__main__":
    sys.exit(main())
