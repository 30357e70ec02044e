"""Which key may speak for which agent name, and which connection reaches which agent.

With CURVE on, the key of every message is read from that message's ZAP metadata (User-Id), never
remembered by routing id: the peer chooses its routing id, and a later connection may reuse one
that an earlier peer had, so a remembered key would let it speak as that peer. The rules:

- a name is bound to the first authorized key that used it; another key is refused while the
  bound key is still authorized (a rotated key, the old one revoked, takes the name over);
- a key speaks for at most `names_per_key` names (one unless the operator allows more), so a key
  cannot fill the fleet with invented agents; `morag-fleet forget` frees a name and its key;
- commands go to the routing id that last spoke for an agent; when another agent speaks on that
  routing id, the earlier one has no route until it speaks again.

Plaintext has no proven keys: any peer may use any name there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol


class IdentityRefused(Exception):
    """A message claims an agent name its key may not use (the text says why)."""


class Routed(Protocol):
    name: str
    routing_id: bytes | None


class Identities:
    """The key -> names index and the routing id -> name map of one `FleetState`."""

    def __init__(self, is_authorized: Callable[[str], bool], names_per_key: int = 1) -> None:
        self.is_authorized = is_authorized
        self.names_per_key = names_per_key  # 0: no limit
        self.names_by_key: dict[str, set[str]] = {}
        self.name_by_route: dict[bytes, str] = {}

    def may_bind(self, name: str, bound_key: str | None, key: str | None) -> bool:
        """Whether `key` binds `name` anew (False: nothing changes). Raises IdentityRefused
        when the name belongs to another authorized key, or the key has its names already."""
        if key is None or key == bound_key:
            return False
        if bound_key is not None and self.is_authorized(bound_key):
            raise IdentityRefused(f"{name} is bound to another authorized key")
        others = self.names_by_key.get(key, set()) - {name}
        if self.names_per_key and len(others) >= self.names_per_key:
            raise IdentityRefused(f"the key already speaks for {', '.join(sorted(others))}")
        return True

    def bind(self, name: str, old_key: str | None, key: str | None) -> None:
        self.unbind(name, old_key)
        if key is not None:
            self.names_by_key.setdefault(key, set()).add(name)

    def unbind(self, name: str, key: str | None) -> None:
        names = self.names_by_key.get(key) if key is not None else None
        if names is not None:
            names.discard(name)
            if not names:
                del self.names_by_key[key]  # type: ignore[arg-type]

    def route(self, record: Routed, routing_id: bytes, records: Mapping[str, Routed]) -> None:
        """`record` spoke on `routing_id`: it is reached there, and no other agent is."""
        if record.routing_id == routing_id:
            return
        self.drop_route(record)
        previous = self.name_by_route.get(routing_id)
        other = records.get(previous) if previous is not None else None
        if other is not None and other.routing_id == routing_id:
            other.routing_id = None
        self.name_by_route[routing_id] = record.name
        record.routing_id = routing_id

    def drop_route(self, record: Routed) -> None:
        if record.routing_id is not None:
            if self.name_by_route.get(record.routing_id) == record.name:
                del self.name_by_route[record.routing_id]
            record.routing_id = None
