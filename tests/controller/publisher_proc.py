"""A real agent-side Publisher in its own process, driven over stdin/stdout with JSON lines.

It is the agent's real telemetry code, only the conversions are missing: the snapshot is
synthetic and job events are emitted when the test asks. Commands from the controller are
printed as {"type": "command", ...} lines, so a test can see `drain` arrive.

stdin ops:  {"op": "events", "count": N, "prefix": "job"}  {"op": "status"}  {"op": "close"}
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from morag_fleet.agent.publisher import Publisher
from morag_fleet.settings import AgentSettings

_print_lock = threading.Lock()


def emit(**line: Any) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--controller", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--plaintext", action="store_true")
    p.add_argument("--agent-key")
    p.add_argument("--controller-key")
    p.add_argument("--slots", type=int, default=2)
    return p.parse_args()


def main() -> int:
    args = parse()
    settings = AgentSettings(worker_id=args.name, controller=args.controller,
                             controller_public_key=args.controller_key,
                             agent_key_file=args.agent_key, telemetry_plaintext=args.plaintext,
                             heartbeat_interval=args.interval, state_dir=Path(args.state_dir))
    agent = {"state": "idle", "completed": 0}
    active: dict[str, dict[str, Any]] = {}

    def snapshot() -> dict[str, Any]:
        return {"state": agent["state"], "slots_used": min(len(active), args.slots),
                "slots_total": args.slots, "active_jobs": list(active.values()),
                "counters": {"claimed": agent["completed"] + len(active),
                             "completed": agent["completed"], "failed": 0, "spooled": 0},
                "outbox_depth": 0}

    def on_command(name: str, body: dict[str, Any]) -> None:
        agent["state"] = "draining" if name == "drain" else "idle"
        emit(type="command", name=name, body=body)

    hello = {"version": "test-1.0", "host": f"host-{args.name}", "content_types": ["document"],
             "slots": args.slots, "converters": {"document": "text"}, "gpus": []}
    publisher = Publisher(settings, snapshot, on_command, hello)
    publisher.start()
    emit(type="ready")
    for raw in sys.stdin:
        op = json.loads(raw)
        if op["op"] == "events":
            emit_jobs(publisher, op, active, agent)
            emit(type="done", op="events")
        elif op["op"] == "start_job":
            active[op["job_id"]] = {"job_id": op["job_id"], "content_type": "document",
                                    "phase": "converting", "progress": 0.5,
                                    "started_at": op.get("started_at", 0)}
            publisher.job_event(op["job_id"], "claimed", content_type="document")
            emit(type="done", op="start_job")
        elif op["op"] == "status":
            emit(type="status", **publisher.link_status())
        elif op["op"] == "close":
            publisher.close(timeout=op.get("timeout", 1.0))
            emit(type="closed")
            return 0
    publisher.close()
    return 0


def emit_jobs(publisher: Publisher, op: dict[str, Any], active: dict[str, Any],
              agent: dict[str, Any]) -> None:
    """Each job: claimed -> converting -> completed, three events per job."""
    for i in range(op["count"]):
        job_id = f"{op.get('prefix', 'job')}-{i}"
        publisher.job_event(job_id, "claimed", content_type="document")
        publisher.job_event(job_id, "converting", progress=0.5)
        publisher.job_event(job_id, "completed", duration=0.25)
        agent["completed"] += 1


if __name__ == "__main__":
    sys.exit(main())
