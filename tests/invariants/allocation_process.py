"""The allocation service as a process, optionally with one rule deliberately broken (test-only seam).

``python -m invariants.allocation_process [VARIANT] [--clock-file PATH [--clock-skew S]]`` patches the named
flaw into the service's modules and then runs the service's own entry point. It lives in tests/ and is never
installed, so no build of nhm can ship a broken variant; the load invariants run each check once against its
variant to prove the check can fail. With --clock-file the service's clock can be moved ahead (follow_clock_file).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nhm_allocation import allocator, batch, repository
from nhm_allocation.app import SPEC
from nhm_allocation.decision import Refusal
from nhm_allocation.eligibility import Usage, cap_reason
from nhm_platform.clock import SystemClock
from nhm_platform.idempotency import Claim
from nhm_platform.service import main


def check_then_insert() -> None:
    """Read the counters without a lock, check the batch's calls against them, then write the number read plus
    the calls: the race that over-allocates and loses counts (two batches both read 4 of 5 and both write 5)."""

    def count_all(session: Session, tenant_id: str, counts: Sequence[repository.Count]) -> dict[str, Usage]:
        counted = {}
        for count in counts:
            current = repository.usage(session, tenant_id, count.phone_number) or Usage()
            day_used, hour_used = current.used_today(count.day_start), current.used_this_hour(count.hour_start)
            if day_used > count.day_limit or hour_used > count.hour_limit:
                break
            time.sleep(0.002)  # the work between the check and the write that makes the window visible
            usage = Usage(count.day_start, day_used + count.calls, count.hour_start, hour_used + count.calls,
                          count.last_ms)
            session.execute(text(
                "UPDATE number_usage SET day_start = :d, day_used = :du, hour_start = :h, hour_used = :hu, "
                "last_ms = :ms WHERE tenant_id = :t AND phone_number = :p"),
                {"d": usage.day_start, "du": usage.day_used, "h": usage.hour_start, "hu": usage.hour_used,
                 "ms": usage.last_ms, "t": tenant_id, "p": count.phone_number})
            counted[count.phone_number] = usage
        return counted

    def lock_usage(session: Session, tenant_id: str, phone_number: str, *,
                   keep: Callable[[Usage], bool]) -> tuple[Usage | None, bool]:
        usage = repository.usage(session, tenant_id, phone_number)  # no lock: another batch counts meanwhile
        return usage, usage is not None and keep(usage)

    repository.count_all = count_all
    repository.lock_usage = lock_usage


def no_wait() -> None:
    """Never wait for a number another transaction is counting: refuse the batch's calls instead (as if out of
    capacity), though the number has room once that transaction commits."""
    count_all = repository.count_all

    def count_or_refuse(session: Session, tenant_id: str, counts: Sequence[repository.Count]) -> dict[str, Usage]:
        try:
            session.execute(text("SELECT 1 FROM number_usage WHERE tenant_id = :t AND phone_number = ANY(:p) "
                                 "ORDER BY phone_number FOR UPDATE NOWAIT"),
                            {"t": tenant_id, "p": sorted(count.phone_number for count in counts)})
        except DBAPIError:
            raise allocator.NothingEligible("", Refusal(0, {}, None)) from None
        counted = count_all(session, tenant_id, counts)
        time.sleep(0.02)  # the work after counting that keeps the numbers locked until the commit
        return counted

    repository.count_all = count_or_refuse


def no_idempotency() -> None:
    """Ignore the call id: a retry is served as a new call."""
    batch.idempotency.claim_all = lambda *args, requests, **kwargs: {  # type: ignore[method-assign]
        request: Claim() for request in requests}  # every call id new, every time
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
    "no_wait": no_wait,
    "no_idempotency": no_idempotency,
    "no_prospect_limits": no_prospect_limits,
    "ignore_standing": ignore_standing,
}


def follow_clock_file(path: Path, skew: float) -> None:
    """Run the service's clock ahead of the machine's by the seconds last written in `path` (watched every 10 ms
    and acknowledged in `path`.<pid>) plus `skew`: a load test moves every process of a run while its load runs,
    each process off by its own skew, as the clocks of two machines are. The clock only ever jumps forward, as an
    NTP step may move a real one. (A thread, not a signal: Python runs a signal's handler on the main thread,
    which a serving process keeps blocked.)"""
    offset = timedelta(seconds=skew)

    def watch() -> None:
        nonlocal offset
        seen = None
        while True:
            written = path.stat().st_mtime_ns if path.exists() else None
            if written != seen:
                seen = written
                text = path.read_text()
                offset = timedelta(seconds=float(text) + skew)
                Path(f"{path}.{os.getpid()}").write_text(text)
            time.sleep(0.01)

    SystemClock.now = lambda self: datetime.now(UTC) + offset  # type: ignore[method-assign]
    threading.Thread(target=watch, daemon=True, name="test-clock").start()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", nargs="?", choices=sorted(VARIANTS))
    parser.add_argument("--clock-file", type=Path)
    parser.add_argument("--clock-skew", type=float, default=0.0, help="seconds this process's clock is off")
    args = parser.parse_args()
    if args.variant:
        VARIANTS[args.variant]()
    if args.clock_file:
        follow_clock_file(args.clock_file, args.clock_skew)
    raise SystemExit(main(SPEC, ["serve"]))
