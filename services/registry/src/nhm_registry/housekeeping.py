"""Background upkeep: prune the change feed and old request ids on a schedule."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

_log = structlog.get_logger("nhm.registry.housekeeping")


class Pruner:
    """Calls prune() every interval seconds in a daemon thread until stopped."""

    def __init__(self, prune: Callable[[], tuple[int, int]], interval: float) -> None:
        self._prune = prune
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="registry-prune", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                entries, requests = self._prune()
            except Exception:  # noqa: BLE001 - upkeep retries on the next tick
                _log.exception("prune.failed")
                continue
            if entries or requests:
                _log.info("prune.done", feed_entries=entries, request_ids=requests)
