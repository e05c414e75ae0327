"""Keyset pagination: opaque page tokens that carry the last row's sort key and the filter they belong to."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from nhm_platform.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE,
              field: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument.for_field(field, "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def filter_fingerprint(*parts: Any) -> str:
    """A short digest of a list call's filters; a token only works with the filters it was made for."""
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_page_token(last_key: list[Any], fingerprint: str) -> str:
    raw = json.dumps({"k": last_key, "f": fingerprint}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str, *, field: str = "page_token") -> list[Any] | None:
    """The last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key, token_fingerprint = data["k"], data["f"]
        if not isinstance(key, list):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument.for_field(field, "not a page token this service issued") from None
    if token_fingerprint != fingerprint:
        raise InvalidArgument.for_field(field, "the page token belongs to a list call with other filters or order")
    return key
