"""Cross-site request forgery checks for every form.

Signed-in forms carry the session's token; the login form (before any session) carries an HMAC of a random
nonce kept in a short-lived cookie (a signed double submit). Every POST must also come from this origin
when the browser says where it comes from. The session cookie is SameSite=Strict besides.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from nhm_dashboard.sessions import SessionStore

FIELD = "csrf_token"
LOGIN_NONCE_COOKIE = "nhm_login_nonce"


def token_matches(expected: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(expected.encode(), (submitted or "").encode())


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_token(store: SessionStore, nonce: str) -> str:
    return store.sign(f"login:{nonce}")


def same_origin(origin: str | None, host_url: str) -> bool:
    """True when the Origin header is absent (older browsers, test clients) or names this site."""
    if not origin:
        return True
    if origin == "null":
        return False
    mine, theirs = urlsplit(host_url), urlsplit(origin)
    return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)
