"""A raw agent connection for hostile-input tests, and a controller in either mode.

`RawPeer` is a real DEALER that sends whatever message a test builds (NaN numbers, terminal
escapes, a chosen routing id), with CURVE keys when given. `fleet_controller` starts a real
controller process with CURVE on (a key pair per agent name, all authorized) or in plaintext.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq
import zmq.auth

from tests.controller.fleet import ControllerProc
from tests.controller.test_curve import agent_keys, curve_controller, make_keys

Keys = tuple[Path, Path] | None  # (agent secret key file, controller public key file)


class RawPeer:
    def __init__(self, endpoint: str, keys: Keys = None, routing_id: bytes | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 2000)
        if routing_id is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        if keys is not None:
            public, secret = zmq.auth.load_certificate(str(keys[0]))
            self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
            self.sock.curve_serverkey = zmq.auth.load_certificate(str(keys[1]))[0]
        self.sock.connect(endpoint)
        self.seq = 0

    def send(self, kind: str, agent: str, body: dict[str, Any], **envelope: Any) -> None:
        self.seq += 1
        message = {"v": 1, "kind": kind, "agent": agent, "sid": "raw", "seq": self.seq,
                   "ts": time.time(), "body": body, **envelope}
        self.sock.send(msgpack.packb(message))

    def close(self) -> None:
        self.ctx.destroy(linger=2000)


def hello(**over: Any) -> dict[str, Any]:
    return {"version": "1.0", "host": "raw-host", "slots": 2, "heartbeat_interval": 1.0,
            "content_types": ["document"], **over}


def heartbeat(**over: Any) -> dict[str, Any]:
    return {"state": "idle", "slots_used": 0, "slots_total": 2, "active_jobs": [],
            "counters": {"completed": 1}, **over}


def fleet_controller(base: Path, cleanup: list, curve: bool, names: tuple[str, ...],
                     extra: tuple[str, ...] = ()) -> tuple[ControllerProc, dict[str, Keys]]:
    """A started controller and each agent name's keys (None in plaintext)."""
    if not curve:
        controller = ControllerProc(base, extra=extra)
        cleanup.append(controller.start())
        return controller, dict.fromkeys(names)
    keys = make_keys(base, "controller", *names)
    controller = curve_controller(base, keys, names)
    controller.extra += extra
    cleanup.append(controller.start())
    return controller, {name: agent_keys(keys, name) for name in names}


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)
