"""Counting the SQL a service's RPCs run: proof that a batch costs a few statements, not one per item."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextlib.contextmanager
def statements_of_rpcs(service: str) -> Iterator[list[str]]:
    """The statements the service's RPC threads (not its background work) run inside the block."""
    seen: list[str] = []
    prefix = f"{service}-rpc"

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name.startswith(prefix):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)
