"""Who may act through the dashboard.

Reading is open to whoever reaches the port (it is bound to loopback unless configured). Every
write is a POST and needs the token from the token file, shown in one of two ways:

- a browser signs in once with the token and gets a session cookie (HttpOnly, SameSite=Strict,
  scoped to the dashboard's path); each form then also carries that session's own CSRF value,
  and a request whose Origin names another site is refused, so another page cannot post for
  the operator;
- a script sends `Authorization: Bearer TOKEN` (no cookie, so nothing to forge).

Without a token file there are no sessions and every write is refused: the dashboard is read
only and says so. Tokens and session values are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

SESSION_COOKIE = "morag_fleet_session"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str
    expires: float


class WriteRefused(Exception):
    """The request may not change anything; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Guard:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def read_only(self) -> bool:
        return self._token is None

    def token_matches(self, candidate: str | None) -> bool:
        if self._token is None or not candidate:
            return False
        return hmac.compare_digest(self._token, candidate.encode())

    def sign_in(self, candidate: str | None) -> Session:
        if self._token is None:
            raise WriteRefused(403, "this dashboard is read-only: the controller was started "
                                    "without --dashboard-token-file")
        if not self.token_matches(candidate):
            raise WriteRefused(403, "wrong token")
        now = time.time()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                          now + SESSION_TTL_S)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            if len(self._sessions) >= MAX_SESSIONS:  # oldest out: sign-ins cannot fill memory
                oldest = min(self._sessions.values(), key=lambda s: s.expires)
                del self._sessions[oldest.sid]
            self._sessions[session.sid] = session
        return session

    def session(self, sid: str | None) -> Session | None:
        if not sid or self._token is None:
            return None
        found = self._sessions.get(sid)
        if found is None or found.expires <= time.time():
            return None
        return found

    def sign_out(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def check_write(self, *, authorization: str | None, sid: str | None, csrf: str | None,
                    origin: str | None, hosts: tuple[str | None, ...]) -> None:
        """Raise WriteRefused unless this POST may act."""
        if self._token is None:
            raise WriteRefused(403, "this dashboard is read-only: the controller was started "
                                    "without --dashboard-token-file")
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(value.strip()):
                return
            raise WriteRefused(401, "wrong token")
        session = self.session(sid)
        if session is None:
            raise WriteRefused(401, "sign in with the dashboard token first")
        # `hosts`: the Host header and a proxy's X-Forwarded-Host (a proxy may rewrite Host)
        if origin and urlsplit(origin).netloc not in [h for h in hosts if h]:
            raise WriteRefused(403, "the request came from another site")
        if not csrf or not hmac.compare_digest(session.csrf.encode(), csrf.encode()):
            raise WriteRefused(403, "the form is stale or forged; reload the page")
