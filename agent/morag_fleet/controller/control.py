"""The local control socket: a ZeroMQ REP socket on ipc://STATE_DIR/control.sock that the operator
commands talk to. It lives in the controller's state directory (mode 0700), so only the account
that runs the controller (and root) can reach it; nothing is exposed on the network."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from morag_fleet import paths
from morag_fleet.wire import codec

SOCKET_NAME = "control.sock"
MAX_IPC_PATH = 100  # sun_path is 108 bytes on Linux
MAX_REQUEST_BYTES = 64 * 1024


class ControllerUnavailable(RuntimeError):
    """The controller is not running (or not answering) for this state directory."""


class ControlError(RuntimeError):
    """The controller answered with an error (unknown agent, agent not connected...)."""


def default_state_dir() -> Path:
    return paths.default_state_dir("morag-fleet")


def control_endpoint(state_dir: Path) -> str:
    path = state_dir.resolve() / SOCKET_NAME
    if len(str(path)) > MAX_IPC_PATH:
        raise ValueError(f"state directory path is too long for a control socket: {path}")
    return f"ipc://{path}"


def bind_control(ctx: zmq.Context, state_dir: Path) -> zmq.Socket:
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
    sock.bind(control_endpoint(state_dir))
    os.chmod(state_dir / SOCKET_NAME, 0o600)
    return sock


def serve_one(sock: zmq.Socket, handlers: dict[str, Callable[[dict[str, Any]], Any]]) -> None:
    """Answer one request; a bad request or a failing handler is an error reply, never a crash."""
    try:
        request = codec.decode(sock.recv(), MAX_REQUEST_BYTES)
        command, args = request["cmd"], request.get("args") or {}
        handler = handlers[command]
    except (codec.DecodeError, KeyError, TypeError):
        reply: dict[str, Any] = {"ok": False, "error": "bad control request"}
    else:
        try:
            reply = {"ok": True, "data": handler(args)}
        except ControlError as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sock.send(codec.encode(reply))


class ControlClient:
    """One request/reply at a time, each with a deadline, so a hung controller cannot hang us."""

    def __init__(self, state_dir: Path, timeout: float = 5.0) -> None:
        self.state_dir = state_dir
        self.timeout = timeout
        self.path = state_dir / SOCKET_NAME
        self._ctx = zmq.Context.instance()

    def call(self, command: str, **args: Any) -> Any:
        if not self.path.exists():
            raise ControllerUnavailable(
                f"the controller is not running: no control socket at {self.path} "
                f"(start it with `morag-fleet controller --state-dir {self.state_dir}`)")
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(control_endpoint(self.state_dir))
            sock.send(codec.encode({"cmd": command, "args": args}))
            if not sock.poll(int(self.timeout * 1000)):
                raise ControllerUnavailable(
                    f"the controller did not answer within {self.timeout:g} s on {self.path} "
                    "(is it running?)")
            reply = codec.decode(sock.recv(), 2**30, max_items=10_000_000)
        finally:
            sock.close()
        if not reply.get("ok"):
            raise ControlError(reply.get("error") or "unknown error")
        return reply.get("data")
