"""Per-tenant limits on a service's bulk and ingest calls, per tenant per server: calls a second, items a
second (the numbers of an import, the events of a report), and calls running at once.

A tenant over its rate, or with too many such calls running at once, is refused at once with
RESOURCE_EXHAUSTED (reason RATE_LIMITED) and a google.rpc.RetryInfo saying when to try again, so one tenant's
flood of imports or event reports cannot take the server's threads and database from the others. Service keys
(followers, remediation acting for the platform) are not limited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import timedelta

from nhm_platform.auth import Principal, Role
from nhm_platform.errors import ResourceExhausted


class TokenBuckets:
    """``rate`` tokens a second per key, at most ``burst`` saved up. Keeps the ``max_keys`` most recently used
    keys (a forgotten key starts again with a full bucket).

    A refusal says when a token will be there for the caller: the first one refused waits for the next token,
    and each one refused after it, while the earlier ones still wait, one more draw's time (a place in line;
    a draw is what the key's last admitted call took: 1, or what spend() last took). Callers that wait as told
    then come back one per draw instead of all at once for the same token, so a tenant's polite threads are
    refused about as often as they are admitted rather than hundreds of times a second."""

    def __init__(self, rate: float, burst: float, *, now: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst = rate, burst
        self._now, self._max_keys = now, max_keys
        # key -> (tokens, as of, the latest time a refused caller was told to come back, the last draw)
        self._buckets: OrderedDict[str, tuple[float, float, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens for key if at least one is there (0.0; the bucket may go below zero, and the next
        caller waits until it has refilled), else the seconds to wait before trying again (nothing taken)."""
        with self._lock:
            now = self._now()
            tokens, told, draw = self._refilled(key, now)
            wait = 0.0
            if tokens >= 1:
                tokens -= cost
                draw = cost or draw  # taking nothing (a check before spend) says nothing of the next draw
            else:
                # At most a full bucket's time away: a caller that ignores the answer keeps no place in line.
                line_end = min(told, now + self.burst / self.rate)
                wait = max((1 - tokens) / self.rate, line_end + draw / self.rate - now if line_end > now else 0.0)
                told = now + wait
            self._store(key, (tokens, now, told, draw))
            return wait

    def spend(self, key: str, cost: float) -> float:
        """Take `cost` more tokens for key, below zero if need be (work already admitted); returns the seconds
        until the bucket holds a token again (0.0 if it still does)."""
        with self._lock:
            now = self._now()
            tokens, told, _ = self._refilled(key, now)
            tokens -= cost
            self._store(key, (tokens, now, told, cost))
            return max(0.0, (1 - tokens) / self.rate)

    def _refilled(self, key: str, now: float) -> tuple[float, float, float]:
        """The key's tokens as of now, when a refused caller was last told to come back, and its last draw."""
        tokens, since, told, draw = self._buckets.pop(key, (self.burst, now, now, 1.0))
        return min(self.burst, tokens + (now - since) * self.rate), told, draw

    def _store(self, key: str, entry: tuple[float, float, float, float]) -> None:
        self._buckets[key] = entry
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


class TenantRateLimit:
    """The limits the server applies to the methods a service named as bulk or ingest: calls a second, items a
    second, and calls at once (a bulk call can take seconds: a rate alone would still let one tenant fill the
    server). A call is admitted while the tenant's item budget is not overdrawn; once its request is parsed it
    draws one item per entry of its longest list, at least one (charge), so a 1,000-number import costs a
    thousand times what a one-number import does, and the tenant's next call waits until the budget refills."""

    def __init__(self, rate: float, burst: float, concurrency: int = 0, *, item_rate: float = 0.0,
                 item_burst: float = 0.0, now: Callable[[], float] = time.monotonic) -> None:
        self._buckets = TokenBuckets(rate, burst, now=now)
        self._items = TokenBuckets(item_rate, item_burst, now=now) if item_rate > 0 else None
        self._concurrency = concurrency
        self._now = now
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def charge(self, principal: Principal, items: int) -> float:
        """Draw the items of an admitted call, once its request (or a stream's message) is parsed; returns the
        seconds until the tenant's budget is no longer overdrawn (a stream waits that long before its next
        message: its one admission does not let it send without limit)."""
        if self._items is None or principal.role is Role.SERVICE:
            return 0.0
        return self._items.spend(_tenant(principal), max(1, items))

    @contextlib.contextmanager
    def admit(self, principal: Principal, method: str) -> Iterator[None]:
        """Hold one of the tenant's places for the length of a call (refused at once when it has none left).

        A caller refused for want of a place is told to come back when one is likely free: the tenant's calls
        take `mean` seconds, so with all places taken one frees every mean / concurrency seconds, and each
        refused caller gets the next such moment (a place in line). A fixed delay brought 16 polite threads
        back 10 times a second each: 1,062 refusals for 37 admitted calls in 8 s. The place is checked before
        the call rate, so a refused caller spends none of the tenant's calls a second."""
        if principal.role is Role.SERVICE:
            yield
            return
        tenant = _tenant(principal)
        with self._lock:
            running = self._running.get(tenant, _Running())
            if self._concurrency and running.calls >= self._concurrency:
                now = self._now()
                spacing = running.mean / self._concurrency
                # At most one mean call away more than the line holds: a caller that ignores it keeps no place.
                running.told = min(max(now, running.told) + spacing, now + 2 * running.mean)
                retry_after = timedelta(milliseconds=math.ceil((running.told - now) * 1000))
                raise ResourceExhausted(
                    f"tenant {tenant!r} already has {running.calls} bulk or ingest calls running here (at most"
                    f" {self._concurrency} at once); retry after {retry_after.total_seconds():.3f} s, when one"
                    " has likely finished", reason="RATE_LIMITED", retry_after=retry_after,
                    metadata={"method": method, "concurrent_calls": str(self._concurrency)})
            self.check(principal, method)
            self._running[tenant] = running
            running.calls += 1
            started = self._now()
        try:
            yield
        finally:
            with self._lock:
                running.calls -= 1
                running.mean += _MEAN_WEIGHT * (self._now() - started - running.mean)
                if not running.calls and running.told <= started:
                    del self._running[tenant]

    def check(self, principal: Principal, method: str) -> None:
        if principal.role is Role.SERVICE:
            return
        tenant = _tenant(principal)
        if self._items is not None:
            # Not overdrawn (the items are drawn by charge()); refused callers are spaced by what the tenant's
            # last call drew, so that they come back one call's worth apart rather than together.
            wait = self._items.take(tenant, cost=0)
            if wait > 0:
                retry_after = timedelta(milliseconds=int(wait * 1000) + 1)
                raise ResourceExhausted(
                    f"tenant {tenant!r} is over its limit of {self._items.rate:g} items a second in bulk and ingest"
                    f" calls (numbers, events, observations; bursts of {self._items.burst:g}); retry after"
                    f" {retry_after.total_seconds():.3f} s",
                    reason="RATE_LIMITED", retry_after=retry_after,
                    metadata={"method": method, "items_per_second": f"{self._items.rate:g}",
                              "item_burst": f"{self._items.burst:g}"})
        wait = self._buckets.take(tenant)
        if wait > 0:
            # Rounded up to the millisecond so that a client waiting exactly this long finds a token.
            retry_after = timedelta(milliseconds=int(wait * 1000) + 1)
            raise ResourceExhausted(
                f"tenant {tenant!r} is over its limit of {self._buckets.rate:g} bulk and ingest calls a second"
                f" (bursts of {self._buckets.burst:g}); retry after {retry_after.total_seconds():.3f} s, or send"
                " fewer, larger batches",
                reason="RATE_LIMITED", retry_after=retry_after,
                metadata={"method": method, "rate_per_second": f"{self._buckets.rate:g}",
                          "burst": f"{self._buckets.burst:g}"})


_MEAN_WEIGHT = 0.2  # of the latest call in the moving average of a tenant's call length


@dataclasses.dataclass
class _Running:
    """A tenant's bulk calls running here, how long they take (a moving average, seconds), and when the last
    caller refused for want of a place was told to come back."""

    calls: int = 0
    mean: float = 0.1
    told: float = 0.0


def _tenant(principal: Principal) -> str:
    return principal.tenant_id or f"({principal.actor})"
