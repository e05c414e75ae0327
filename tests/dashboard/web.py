"""Helpers for driving the dashboard with Flask's test client: sign in, read forms' CSRF tokens, read tables."""

from __future__ import annotations

import html
import re
from typing import Any

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: str, action: str | None = None) -> str:
    """The CSRF token of the form posting to ``action`` (default: the first form on the page)."""
    if action is not None:
        forms = re.findall(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', page, flags=re.S)
        bodies = [body for target, body in forms if html.unescape(target) == action]
        assert bodies, f"the page has no form posting to {action}"
        page = bodies[0]
    found = TOKEN.search(page)
    assert found and found.group(1), "the form has no CSRF token"
    return html.unescape(found.group(1))


def sign_in(client: Any, key: str) -> Any:
    """Sign in as a person would: load the form, post the key with the form's token."""
    form = client.get("/login")
    return client.post("/login", data={"api_key": key, "csrf_token": csrf_token(form.get_data(as_text=True))})


def text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def tile_count(page: str, status: str) -> int:
    found = re.search(rf'data-status="{status}">\s*<span class="tile-label">[^<]*</span>\s*'
                      rf'<span class="tile-count" data-count="(\d+)"', page)
    assert found, f"no {status} tile"
    return int(found.group(1))


def rows(page: str) -> list[str]:
    """Phone numbers listed in the Numbers table, in order."""
    return re.findall(r'<tr data-phone="([^"]+)"', page)
