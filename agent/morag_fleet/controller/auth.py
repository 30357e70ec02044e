"""Which agent keys may connect: ZeroMQ's ZAP authenticator over a directory of public keys,
reloaded on SIGHUP and whenever the directory's *.key files change."""

from __future__ import annotations

from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from morag_fleet.log import get_logger
from morag_fleet.wire.keys import authorized_names

log = get_logger(__name__)


class AuthorizedKeys:
    def __init__(self, ctx: zmq.Context, directory: Path) -> None:
        self.directory = directory
        self.names: dict[str, str] = {}  # z85 key -> key file stem
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._auth = ThreadAuthenticator(ctx, log=None)

    def start(self) -> None:
        self._auth.start()
        self.reload()

    def stop(self) -> None:
        self._auth.stop()

    def is_authorized(self, key: str) -> bool:
        return key in self.names

    def reload(self) -> None:
        self._signature = self._scan()
        self._auth.configure_curve(domain="*", location=str(self.directory))
        self.names = authorized_names(self.directory)
        log.info("authorized_keys_loaded", directory=str(self.directory), keys=len(self.names))
        if not self.names:
            log.warning("authorized_keys_empty", hint="every agent will be refused",
                        directory=str(self.directory))

    def reload_if_changed(self) -> bool:
        if self._scan() == self._signature:
            return False
        self.reload()
        return True

    def _scan(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        try:
            for path in sorted(self.directory.glob("*.key")):
                stat = path.stat()
                found.append((path.name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            pass
        return tuple(found)
