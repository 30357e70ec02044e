"""Test-only fault injection: scripted errors, delays and cut connections in front of the real
endpoints, so clients can be tested against the failures a real network and server produce."""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..log import get_logger
from .models import FaultRule

log = get_logger(__name__)
ADMIN_PATH = "/_faults"


class ConnectionDropped(Exception):
    """Raised mid-response on purpose: the ASGI server then closes the connection unfinished."""


@dataclass
class ActiveRule:
    rule: FaultRule
    pattern: re.Pattern[str]
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        method_ok = self.rule.method in ("*", method.upper())
        return self.remaining != 0 and method_ok and bool(self.pattern.search(path))


class FaultRules:
    def __init__(self) -> None:
        self._rules: list[ActiveRule] = []
        self._lock = threading.Lock()

    def replace(self, rules: list[FaultRule]) -> None:
        compiled = [ActiveRule(r, re.compile(r.path_regex), r.count) for r in rules]
        with self._lock:
            self._rules = compiled

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first matching rule with uses left, using one of them up."""
        with self._lock:
            for active in self._rules:
                if active.matches(method, path):
                    if active.remaining > 0:
                        active.remaining -= 1
                    return active.rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**a.rule.model_dump(), "remaining": a.remaining} for a in self._rules]


class FaultMiddleware:
    def __init__(self, app: ASGIApp, rules: FaultRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == ADMIN_PATH:
            await self.app(scope, receive, send)
            return
        rule = self.rules.take(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        log.info("fault_injected", method=scope["method"], path=scope["path"], **_summary(rule))
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop_after_bytes is not None:
            await self.app(scope, receive, _truncating(send, rule.drop_after_bytes))
        elif rule.status is not None:
            await _send_fault(send, rule)
        else:
            await self.app(scope, receive, send)


def _summary(rule: FaultRule) -> dict[str, Any]:
    fields = ("status", "delay", "drop_after_bytes")
    return {name: getattr(rule, name) for name in fields if getattr(rule, name) is not None}


def _truncating(send: Send, limit: int) -> Send:
    sent = 0

    async def send_until_limit(message: Message) -> None:
        nonlocal sent
        if message["type"] != "http.response.body":
            await send(message)
            return
        body = message.get("body", b"")
        if sent + len(body) <= limit:
            sent += len(body)
            await send(message)
            return
        await send({"type": "http.response.body", "body": body[: limit - sent], "more_body": True})
        raise ConnectionDropped(f"fault injection: connection cut after {limit} bytes")

    return send_until_limit


async def _send_fault(send: Send, rule: FaultRule) -> None:
    if isinstance(rule.body, str):
        body, media = rule.body.encode(), b"text/plain; charset=utf-8"
    else:
        payload = rule.body if rule.body is not None else {"detail": "injected fault"}
        body, media = json.dumps(payload).encode(), b"application/json"
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    if rule.retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(rule.retry_after)).encode()))
    await send({"type": "http.response.start", "status": rule.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
