"""Server-side sessions: the API key stays here; the browser holds only a random, signed session id.

A cookie value is ``<id>.<hmac>``: 32 random bytes (URL-safe base64) and an HMAC-SHA256 of the id under the
dashboard's secret, so a forged or altered id is refused before any lookup. Sessions end at logout, after
their lifetime, or after sitting idle; beyond ``max_sessions`` the least recently used end first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nhm_platform.clock import Clock


@dataclass
class Session:
    id: str
    api_key: str
    tenant_id: str
    tenant_name: str
    # Sent back in every form; a POST without it is refused.
    csrf_token: str
    created: datetime
    expires: datetime
    last_seen: datetime
    # Messages shown once on the next page (kind, text).
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    def __init__(self, secret: bytes, clock: Clock, *, lifetime: timedelta, idle_timeout: timedelta,
                 max_sessions: int) -> None:
        self._secret = secret
        self._clock = clock
        self._lifetime = lifetime
        self._idle = idle_timeout
        self._max = max(1, max_sessions)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def sign(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()

    def create(self, api_key: str, tenant_id: str, tenant_name: str) -> tuple[str, Session]:
        """A new session; returns the cookie value and the session."""
        now = self._clock.now()
        session = Session(id=secrets.token_urlsafe(32), api_key=api_key, tenant_id=tenant_id,
                          tenant_name=tenant_name, csrf_token=secrets.token_urlsafe(32), created=now,
                          expires=now + self._lifetime, last_seen=now)
        with self._lock:
            self._purge(now)
            while len(self._sessions) >= self._max:
                self._sessions.popitem(last=False)
            self._sessions[session.id] = session
        return f"{session.id}.{self.sign(session.id)}", session

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None (missing, forged, expired, idle or logged out)."""
        session_id = self._verified_id(cookie)
        if session_id is None:
            return None
        now = self._clock.now()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now >= session.expires or now - session.last_seen >= self._idle:
                del self._sessions[session_id]
                return None
            session.last_seen = now
            self._sessions.move_to_end(session_id)
            return session

    def end(self, cookie: str | None) -> None:
        session_id = self._verified_id(cookie)
        if session_id is not None:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _verified_id(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        session_id, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self.sign(session_id)):
            return None
        return session_id

    def _purge(self, now: datetime) -> None:
        dead = [sid for sid, s in self._sessions.items() if now >= s.expires or now - s.last_seen >= self._idle]
        for sid in dead:
            del self._sessions[sid]
