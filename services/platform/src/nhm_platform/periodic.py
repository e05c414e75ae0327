"""Background work on a schedule: a daemon thread that runs a function every interval seconds until stopped.

The services' upkeep (pruning, periodic rescoring, the deferred rescoring pass) runs this way. A run that raises
is logged and the next one tries again: upkeep never dies with its first error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

_log = structlog.get_logger("nhm.periodic")


class Periodic:
    """Calls work() every interval seconds, the first time one interval after start(), until stop()."""

    def __init__(self, name: str, interval: float, work: Callable[[], object], *, join_timeout: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {interval}")
        self.name, self._interval, self._work, self._join_timeout = name, interval, work, join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wake the thread and wait (up to join_timeout) for a run in progress to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._join_timeout)

    @property
    def stopping(self) -> bool:
        """For long work: whether to stop between steps."""
        return self._stop.is_set()

    def run_logged(self) -> None:
        """One run now, in the caller's thread, its error logged instead of raised."""
        try:
            self._work()
        except Exception:  # noqa: BLE001 - upkeep retries on the next tick
            _log.exception("periodic.failed", task=self.name)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_logged()
