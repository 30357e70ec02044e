"""Simulated agents for the controller benchmark: N real DEALER sockets in this one process, each
saying hello and then sending heartbeats in the real wire format, round-robin, at a paced rate.
Frames are encoded once up front, so the simulator spends its CPU on sending (it shares the
machine with the controller it measures).

    python -m tests.bench.fleet_sim --endpoint tcp://127.0.0.1:5555 --agents 5000 --offset 0 \
        --cpus 1

stdin lines drive it: `run RATE SECONDS` (RATE 0 = as fast as possible), `quit`. After each run
it prints one JSON line: {"sent": n, "again": n, "elapsed": s}; `again` counts sends refused
because that connection's queue was full (the controller pushing back), which a real agent
would count as a dropped heartbeat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import zmq

from morag_fleet.wire import codec


def heartbeat(name: str) -> bytes:
    return codec.encode({"v": 1, "kind": "heartbeat", "agent": name, "sid": "sim", "seq": 0,
                         "ts": time.time(), "body": {
                             "state": "busy", "slots_used": 1, "slots_total": 2,
                             "active_jobs": [{"job_id": f"{name}-job", "content_type": "audio",
                                              "phase": "converting", "progress": 0.4,
                                              "started_at": time.time()}],
                             "counters": {"claimed": 10, "completed": 9, "failed": 0,
                                          "spooled": 0},
                             "outbox_depth": 0, "cpu_percent": 12.5, "memory_percent": 40.0,
                             "disk_percent": 30.0, "load1": 0.5, "gpus": []}})


def hello(name: str) -> bytes:
    return codec.encode({"v": 1, "kind": "hello", "agent": name, "sid": "sim", "seq": 0,
                         "ts": time.time(), "body": {
                             "version": "sim", "host": f"host-{name}", "slots": 2,
                             "heartbeat_interval": 3600.0, "content_types": ["audio"],
                             "gpus": []}})


def connect(endpoint: str, names: list[str]) -> tuple[zmq.Context, list[zmq.Socket]]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, len(names) + 64)
    sockets = []
    for name in names:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.setsockopt(zmq.RCVHWM, 0)  # acks are read by the io thread, like a real agent
        sock.connect(endpoint)
        sock.send(hello(name))
        sockets.append(sock)
    return ctx, sockets


def run(sockets: list[zmq.Socket], frames: list[bytes], rate: float, seconds: float) -> dict:
    """Round-robin over the agents, 100 sends between clock reads, sleeping when ahead."""
    sent = again = 0
    sends = list(zip([sock.send for sock in sockets], frames, strict=True))
    n = len(sends)
    dontwait = int(zmq.DONTWAIT)  # a plain int: flag enums cost more than the send itself
    start = time.perf_counter()
    end = start + seconds
    i = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if rate and sent >= (now - start) * rate:
            time.sleep(0.0005)
            continue
        for send, frame in sends[i:i + 100]:
            try:
                send(frame, dontwait)
                sent += 1
            except zmq.Again:
                again += 1
        i = i + 100 if i + 100 < n else 0
    return {"sent": sent, "again": again, "elapsed": time.perf_counter() - start}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--agents", type=int, default=5000)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--cpus", default="", help="comma-separated CPUs to run on (default: any)")
    args = p.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    names = [f"sim-{i:05d}" for i in range(args.offset, args.offset + args.agents)]
    ctx, sockets = connect(args.endpoint, names)
    frames = [heartbeat(name) for name in names]
    print(json.dumps({"ready": len(sockets)}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        result = run(sockets, frames, float(parts[1]), float(parts[2]))
        print(json.dumps(result), flush=True)
    ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
