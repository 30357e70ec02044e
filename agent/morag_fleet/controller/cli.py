"""`morag-fleet` sub-commands of the controller: the daemon itself, key generation, and the
operator views and commands, which talk to a running controller over its local control socket."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from morag_fleet.controller import history_cli, views
from morag_fleet.controller.control import (
    ControlClient,
    ControlError,
    ControllerUnavailable,
    default_state_dir,
)
from morag_fleet.controller.text import json_text, screen


def register(subparsers: Any) -> None:
    _register_controller(subparsers)
    keys = subparsers.add_parser("keys", help="create a CURVE key pair (NAME.key, NAME.key_secret)")
    keys.add_argument("--dir", type=Path, required=True, help="directory to write the pair to")
    keys.add_argument("--name", required=True, help="NAME of the pair (agent name, controller)")
    keys.set_defaults(func=cmd_keys)
    _register_views(subparsers)


def _register_controller(subparsers: Any) -> None:
    p = subparsers.add_parser("controller", help="run the fleet controller")
    p.add_argument("--bind", default="tcp://0.0.0.0:5555", help="ZeroMQ endpoint for agents")
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"history, keys and control socket (default {default_state_dir()})")
    p.add_argument("--plaintext", action="store_true",
                   help="no CURVE: any agent may connect and claim any name (local demo only)")
    p.add_argument("--authorized-keys", type=Path, default=None,
                   help="directory of agent public keys (default STATE_DIR/authorized_keys)")
    p.add_argument("--secret-key", type=Path, default=None,
                   help="controller secret key (default STATE_DIR/controller.key_secret, "
                        "created on first start)")
    p.add_argument("--http-port", "--metrics-port", dest="http_port", type=int, default=None,
                   help="serve /metrics and the dashboard on this port (--metrics-port is the "
                        "same option)")
    p.add_argument("--http-addr", "--metrics-addr", dest="http_addr", default="127.0.0.1",
                   help="address of that server (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--url-prefix", default="",
                   help="path the dashboard is served under behind a reverse proxy (/fleet)")
    p.add_argument("--dashboard-token-file", type=Path, default=None,
                   help="file (mode 0600) with the token that allows actions from the "
                        "dashboard; without it the dashboard is read-only")
    p.add_argument("--retention-days", type=float, default=30.0, help="keep events this long")
    p.add_argument("--retention-events", type=int, default=200_000, help="keep at most this many")
    p.add_argument("--names-per-key", type=int, default=1, metavar="N",
                   help="agent names one CURVE key may use (default 1; 0: no limit)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", default="auto", choices=("auto", "json", "console"))
    p.set_defaults(func=cmd_controller)


def _register_views(subparsers: Any) -> None:
    def common(p: argparse.ArgumentParser, watch: bool = True) -> None:
        p.add_argument("--state-dir", type=Path, default=None,
                       help=f"the controller's state directory (default {default_state_dir()})")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
        if watch:
            p.add_argument("--watch", nargs="?", type=float, const=2.0, default=None,
                           metavar="SECONDS", help="redraw every SECONDS (default 2)")

    for name, help_text in (("status", "one line per agent and a totals line"),
                            ("agents", "agent details: key, content types, host load"),
                            ("jobs", "active jobs fleet-wide with phase, progress and age")):
        p = subparsers.add_parser(name, help=help_text)
        common(p)
        p.set_defaults(func=cmd_view, view=name)
    p = subparsers.add_parser("events", help="event history; --follow for new ones")
    common(p, watch=False)
    p.add_argument("--agent", default=None, help="only this agent's events")
    p.add_argument("--job", default=None, help="only this job's events")
    p.add_argument("--limit", type=int, default=50, help="how many recent events to show")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.set_defaults(func=cmd_events)
    for name, help_text in (("drain", "tell an agent to stop claiming (running jobs finish)"),
                            ("resume", "tell a drained agent to claim again")):
        p = subparsers.add_parser(name, help=help_text)
        p.add_argument("agent", help="agent name as shown by `morag-fleet status`")
        if name == "drain":
            p.add_argument("--note", default=None,
                           help="why, shown with the agent (\"driver update, back at 14:00\")")
            p.add_argument("--until", default=None, metavar="TIME",
                           help="resume by itself then: a time of day (14:00) or a duration "
                                "(30m, 2h, 1d)")
        common(p, watch=False)
        p.set_defaults(func=cmd_command, command_name=name)
    _register_cancel(subparsers, common)
    history_cli.register(subparsers, common,
                         lambda args: history_cli.cmd_history(args, _client(args), _fail))
    p = subparsers.add_parser("forget", help="remove an agent's record from the controller's "
                              "state and history database (its events stay)")
    p.add_argument("agent", help="agent name as shown by `morag-fleet status`")
    common(p, watch=False)
    p.set_defaults(func=cmd_forget)


def _register_cancel(subparsers: Any, common: Any) -> None:
    p = subparsers.add_parser("cancel", help="stop a running job: its slot gets SIGTERM, then "
                              "SIGKILL; the job is reported failed (cancelled by operator)")
    p.add_argument("job", help="job id as shown by `morag-fleet jobs`")
    p.add_argument("--note", default=None, help="why; MoRAG gets it in the failure's reason")
    p.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                   help="seconds between SIGTERM and SIGKILL (default 10)")
    p.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the agent's answer and the job's failure "
                        "(0: only send)")
    common(p, watch=False)
    p.set_defaults(func=cmd_cancel)


# ---- the daemon ---------------------------------------------------------------------------------


def cmd_controller(args: argparse.Namespace) -> int:
    from morag_fleet.controller.server import Controller, ControllerConfig, ControllerError
    from morag_fleet.controller.store import Retention
    from morag_fleet.log import configure_logging, get_logger

    configure_logging(args.log_level, args.log_format)
    log = get_logger("morag_fleet.controller")
    config = ControllerConfig(
        bind=args.bind, state_dir=args.state_dir or default_state_dir(),
        plaintext=args.plaintext, authorized_keys=args.authorized_keys,
        secret_key=args.secret_key, metrics_port=args.http_port,
        metrics_addr=args.http_addr, url_prefix=args.url_prefix,
        dashboard_token_file=args.dashboard_token_file,
        retention=Retention(args.retention_days * 86400, args.retention_events),
        names_per_key=args.names_per_key)
    controller = Controller(config)
    try:
        controller.start()
    except (ControllerError, ValueError, OSError) as exc:
        log.error("controller_start_failed", error=str(exc))
        print(f"morag-fleet controller: {exc}", file=sys.stderr)
        controller.close()
        return 2
    signal.signal(signal.SIGTERM, lambda *_: controller.request_stop())
    signal.signal(signal.SIGINT, lambda *_: controller.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: controller.request_reload())
    notifier = _systemd_notifier()
    notifier("READY=1")
    controller.on_tick = _watchdog(notifier)
    try:
        controller.serve()
    finally:
        notifier("STOPPING=1")
        controller.close()
    return 0


def _systemd_notifier() -> Any:
    """sd_notify when started by systemd (NOTIFY_SOCKET set), a no-op otherwise."""
    import os

    if not os.environ.get("NOTIFY_SOCKET"):
        return lambda state: None
    import sdnotify

    return sdnotify.SystemdNotifier().notify


def _watchdog(notify: Any) -> Any:
    last = [0.0]

    def tick() -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            notify("WATCHDOG=1")

    return tick


def cmd_keys(args: argparse.Namespace) -> int:
    from morag_fleet.wire.keys import KeyFileError, create_key_pair

    try:
        public, secret = create_key_pair(args.dir, args.name)
    except KeyFileError as exc:
        print(f"morag-fleet keys: {exc}", file=sys.stderr)
        return 1
    print(f"public key: {public}  (give to the other side)")
    print(f"secret key: {secret}  (mode 0600, stays on this host)")
    return 0


# ---- operator views -----------------------------------------------------------------------------


RENDERERS = {"status": views.render_status, "agents": views.render_agents,
             "jobs": views.render_jobs}


def _client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(args.state_dir or default_state_dir(), timeout=args.timeout)


def _fail(exc: Exception) -> int:
    print(f"morag-fleet: {screen(str(exc))}", file=sys.stderr)
    return 3 if isinstance(exc, ControllerUnavailable) else 1


def cmd_view(args: argparse.Namespace) -> int:
    client = _client(args)
    while True:
        try:
            data = client.call(args.view)
        except (ControllerUnavailable, ControlError, ValueError) as exc:
            return _fail(exc)
        text = json_text(data, indent=2) if args.json else screen(RENDERERS[args.view](data))
        if args.watch is None:
            print(text)
            return 0
        sys.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S ") + "\n" + text + "\n")
        sys.stdout.flush()
        time.sleep(args.watch)


def cmd_events(args: argparse.Namespace) -> int:
    client = _client(args)
    request = {"agent": args.agent, "job": args.job, "limit": args.limit}
    first = True
    while True:
        try:
            events = client.call("events", **request)
        except (ControllerUnavailable, ControlError, ValueError) as exc:
            return _fail(exc)
        if args.json and not args.follow:
            print(json_text(events, indent=2))
        elif args.json:  # one JSON object per line while following
            for event in events:
                print(json_text(event), flush=True)
        elif events or first:
            print(screen(views.render_events(events, header=first)), flush=True)
        if not args.follow:
            return 0
        first = False
        if events:
            request["after"] = events[-1]["id"]
        request["limit"] = 1000
        time.sleep(0.5)


def cmd_command(args: argparse.Namespace) -> int:
    extra = {"note": args.note, "until": args.until} if args.command_name == "drain" else {}
    try:
        result = _client(args).call(args.command_name, agent=args.agent, **extra)
    except (ControllerUnavailable, ControlError, ValueError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(result))
        return 0
    line = f"{args.command_name} sent to {args.agent}"
    if result.get("note"):
        line += f": {result['note']}"
    if views.is_number(result.get("until")):
        line += f" (resumes by itself at {views.clock(result['until'])})"
    print(screen(line))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from morag_fleet.controller.cancel_wait import wait_for_cancel

    client = _client(args)
    try:
        sent = client.call("cancel", job=args.job, note=args.note, grace=args.grace)
        outcome = wait_for_cancel(client, sent, args.wait)
    except (ControllerUnavailable, ControlError, ValueError) as exc:
        return _fail(exc)
    if args.json:
        print(json_text(outcome))
    else:
        print(screen(outcome["message"]))
    return 0 if outcome["ok"] else 1


def cmd_forget(args: argparse.Namespace) -> int:
    try:
        result = _client(args).call("forget", agent=args.agent)
    except (ControllerUnavailable, ControlError, ValueError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"forgot {args.agent} (was {result['was']})")
    if result["was"] not in ("lost", "offline"):
        print(f"{args.agent} was online: it comes back with its next message unless it is "
              "stopped or its key revoked first")
    return 0
