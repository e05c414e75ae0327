"""The allocation service as a process, optionally with one rule deliberately broken (test-only seam).

``python -m invariants.allocation_process [VARIANT]`` patches the named flaw into the service's modules and then
runs the service's own entry point. It lives in tests/ and is never installed, so no build of nhm can ship a
broken variant; the load invariants run each check once against its variant to prove the check can fail.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from nhm_allocation import allocator, batch, repository
from nhm_allocation.app import SPEC
from nhm_allocation.eligibility import Usage, cap_reason
from nhm_platform.service import main


def check_then_insert() -> None:
    """Read the counters, decide, then write the number read plus one: the race that over-allocates and loses
    counts (two callers both read 4 of 5 and both write 5)."""

    def take(session: Session, tenant_id: str, phone_number: str, *, day_start: int, hour_start: int,
             daily_cap: int, hourly_cap: int, now_ms: int) -> Usage | None:
        current = repository.usage(session, tenant_id, phone_number) or Usage()
        day_used, hour_used = current.used_today(day_start), current.used_this_hour(hour_start)
        if day_used >= daily_cap or hour_used >= hourly_cap:
            return None
        time.sleep(0.002)  # the work between the check and the write that makes the window visible
        session.execute(text(
            "UPDATE number_usage SET day_start = :d, day_used = :du, hour_start = :h, hour_used = :hu, "
            "last_ms = :ms WHERE tenant_id = :t AND phone_number = :p"),
            {"d": day_start, "du": day_used + 1, "h": hour_start, "hu": hour_used + 1, "ms": now_ms,
             "t": tenant_id, "p": phone_number})
        return Usage(day_start, day_used + 1, hour_start, hour_used + 1, now_ms)

    repository.take = take
    repository.take_first = repository.take_each_in_turn  # which calls the take above


def skip_locked_only() -> None:
    """Always pass over numbers another transaction holds, never wait for one: refuses while capacity remains."""

    take_first = repository.take_first

    def take_first_and_hold(session: Session, tenant_id: str, candidates: Sequence[tuple[str, int]],
                            **counts: Any) -> tuple[str, Usage] | None:
        taken = take_first(session, tenant_id, candidates, **counts)
        if taken is not None:
            # The work after counting that keeps the number held until commit: with every hot number held by
            # some transaction at once, a call that never waits is refused though all of them have room.
            time.sleep(0.02)
        return taken

    def take(session: Session, tenant_id: str, phone_number: str, *, daily_cap: int, **counts: Any) -> Usage | None:
        taken = take_first_and_hold(session, tenant_id, [(phone_number, daily_cap)], **counts)
        return taken[1] if taken is not None else None

    repository.take_first = take_first_and_hold
    repository.take = take


def no_idempotency() -> None:
    """Ignore the call id: a retry is served as a new call."""
    allocator.idempotency.claim = lambda *args, **kwargs: None  # type: ignore[method-assign]
    repository.idempotency.complete_all = lambda *args, **kwargs: None  # type: ignore[method-assign]
    original = repository.record_all

    def record_all(session: Session, recorded: Sequence[repository.Recorded]) -> None:
        # the ledger keeps one row per call id
        original(session, [dataclasses.replace(r, ledger={**r.ledger, "call_id": f"{r.ledger['call_id']}#"
                                                                                  f"{time.monotonic_ns()}"})
                           for r in recorded])

    repository.record_all = record_all


def no_prospect_limits() -> None:
    """Forget the prospect's recent calls: per-prospect limits never apply."""
    batch.AllocationBatch.recent_calls = lambda *args, **kwargs: []  # type: ignore[method-assign]


def ignore_standing() -> None:
    """Judge numbers by their caps only: once the eligible numbers are full, the refusal's last look over the
    whole pool hands out resting, quarantined, retired, flagged and blocked ones."""
    allocator.exclusion = cap_reason


VARIANTS: dict[str, Callable[[], None]] = {
    "check_then_insert": check_then_insert,
    "skip_locked_only": skip_locked_only,
    "no_idempotency": no_idempotency,
    "no_prospect_limits": no_prospect_limits,
    "ignore_standing": ignore_standing,
}


if __name__ == "__main__":
    variant = sys.argv[1] if len(sys.argv) > 1 else ""
    if variant:
        VARIANTS[variant]()
    sys.exit(main(SPEC, ["serve"]))
