"""Background upkeep: prune the change feed and old request ids on a schedule."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from nhm_platform.periodic import Periodic

_log = structlog.get_logger("nhm.registry.housekeeping")


def scheduled_pruner(prune: Callable[[], tuple[int, int]], interval: float) -> Periodic:
    """Calls prune() every interval seconds in a daemon thread until stopped; logs what it pruned."""

    def run() -> None:
        entries, requests = prune()
        if entries or requests:
            _log.info("prune.done", feed_entries=entries, request_ids=requests)

    return Periodic("registry-prune", interval, run, join_timeout=5)
