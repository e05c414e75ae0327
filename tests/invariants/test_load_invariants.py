"""Every allocation promise under load: two allocation processes on one database (PostgreSQL, and a SQLite file
shared by both processes), three client processes with 16 threads each, retries racing across processes,
demand ten times capacity.

Each invariant is also run once against a deliberately broken allocator (allocation_process.py) and must
catch it: a check that cannot fail proves nothing. NHM_RELIABILITY_SCALE (default 1) multiplies calls, caps and
prospects for the long version (`make reliability`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from invariants import load

from nhm_allocation.app import SPEC

SCALE = load.SCALE
pytestmark = load.RELIABILITY_MARKS
CLIENTS, THREADS, PROCESSES, TIMEOUT = 3, 16, 2, 20.0
# Seconds into the load at which its day and hour end, and between the hours that end after (the load takes
# 9-25 s here); how far apart the processes' clocks are then (each next process's is ahead by as much). At most
# MAX_HOPS hours end after the day, so that a long run (make reliability) stays within that day and within the
# 24 hours a prospect's limit counts.
CROSS_AFTER, HOP_EVERY, CLOCK_SKEW, MAX_HOPS = 4.0, 3.0, 0.25, 12

# Each broken variant and the invariants that must catch it.
BROKEN = {
    "check_then_insert": ("over_cap", "counters_match_ledger"),
    "no_wait": ("false_refusals",),
    "no_idempotency": ("double_allocations",),
    "no_prospect_limits": ("prospect_limit_violations",),
    "ignore_standing": ("foreign_or_ineligible",),
}
# The campaign a broken run needs and the share of its calls (demand stays several times the capacity).
BROKEN_CAMPAIGNS = {
    "check_then_insert": ({"capped"}, 0.5),
    "no_wait": ({"ample"}, 1.0),
    "no_idempotency": ({"ample"}, 0.5),
    "no_prospect_limits": ({"prospects"}, 0.5),
    "ignore_standing": ({"capped"}, 0.5),
}


class Hops:
    """Moves the clocks of a run's processes while its load runs: midnight in the campaigns' reset zone (the start
    of a day and of an hour) comes CROSS_AFTER seconds in, then the start of another hour every HOP_EVERY seconds
    (MAX_HOPS times at most); each process's clock is CLOCK_SKEW ahead of the one before, as two machines' clocks
    are apart. Just before each move it reads the database (one snapshot): the next hour's counters would hide a
    disagreement between this hour's counters and the ledger from the check after the run."""

    def __init__(self, processes: list[Any], clock_file: Path, url: str) -> None:
        self._processes, self._clock_file, self._url = processes, clock_file, url
        self._ahead = load.midnight_ahead(CROSS_AFTER)
        load.move_clocks(processes, clock_file, self._ahead)
        self.snapshots: list[load.Ledger] = []
        self._stopping, self._errors = threading.Event(), []
        self._thread = threading.Thread(target=self._hop, daemon=True)
        self._thread.start()

    def _hop(self) -> None:
        time.sleep(CROSS_AFTER)
        for _ in range(MAX_HOPS):
            if self._stopping.wait(HOP_EVERY - 1.0):
                return
            try:
                self.snapshots.append(load.Ledger.read(self._url))
                self._ahead = load.hour_ahead(self._ahead, 1.0)
                load.move_clocks(self._processes, self._clock_file, self._ahead)
            except Exception as error:  # noqa: BLE001 - raised by stop(), in the test's thread
                self._errors.append(error)
                return

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        assert not self._errors, self._errors


def load_run(fresh_database, upstream, *, variant: str = "", only: set[str] | None = None,
             scale: int = 1, calls: float = 1.0, clock_file: Path | None = None
             ) -> tuple[load.Run, float, list[load.Ledger]]:
    """One run, its load's seconds, and with clock_file the snapshots taken while the processes' clocks were
    moved during the load (Hops)."""
    campaigns = [c for c in load.scenario(scale) if only is None or c.campaign_id in only]
    for c in campaigns:
        c.calls = int(c.calls * calls)
    load.publish(upstream, campaigns)
    url = fresh_database(SPEC)
    with ThreadPoolExecutor(PROCESSES) as pool:
        processes = list(pool.map(lambda i: load.start_allocation(url, upstream.address, variant, clock_file,
                                                                  clock_skew=i * CLOCK_SKEW),
                                  range(PROCESSES)))
    hops = None
    try:
        targets = [p.address for p in processes]
        load.wait_caught_up(targets, upstream)
        hops = Hops(processes, clock_file, url) if clock_file is not None else None
        began = time.monotonic()
        records, releases = load.run_clients(targets, load.Jobs.plan(campaigns, CLIENTS, PROCESSES),
                                             threads=THREADS, timeout=TIMEOUT)
        seconds = time.monotonic() - began
        records += load.replay(targets[0], records, limit=100, timeout=TIMEOUT)
    finally:
        if hops is not None:
            hops.stop()
        for process in processes:
            process.stop()
    snapshots = hops.snapshots if hops is not None else []
    return load.Run(campaigns, records, load.Ledger.read(url), releases), seconds, snapshots


def test_every_invariant_holds_under_load(database_url, upstream, backend, tmp_path):
    # Every run crosses a day and several hours under load: a count read before a boundary and written after
    # another process counted past it once put a call in the new hour's counter while its ledger row named the
    # old one (CI, 2026-12-07 23:00).
    run, seconds, snapshots = load_run(database_url, upstream, scale=SCALE, clock_file=tmp_path / "clock")
    found = load.violations(run)
    found["counters_match_ledger"] += [f"snapshot {i}: {line}" for i, snapshot in enumerate(snapshots)
                                       for line in load.counters_against(snapshot)]
    found["outlived_deadline"] = load.outlived_deadline(run)
    found["unexpected_errors"] = load.unexpected_errors(run)
    sends = sum(1 for r in run.records if not r.get("replay"))
    print(f"\nload on {backend}: {PROCESSES} allocation processes, {CLIENTS} client processes x {THREADS} threads, "
          f"{sends} sends and {len(run.releases)} releases in {seconds:.1f} s ({sends / seconds:.0f} sends/s), "
          f"outcomes {dict(run.outcomes())}")
    for name, lines in found.items():
        print(f"  {name}: {len(lines)}")
    assert run.outcomes()["allocated"] > 0
    days, hours = ({a[period] for a in run.ledger.counted} for period in ("day_start", "hour_start"))
    print(f"  calls counted in {len(days)} days and {len(hours)} hours; {len(snapshots)} snapshots checked while "
          "the load ran")
    assert len(days) == 2 and len(hours) >= 2, "the load did not cross its day and hour"
    assert not any(found.values()), {k: v[:5] for k, v in found.items() if v}


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_each_invariant_catches_its_broken_variant(postgres, upstream, variant):
    """On PostgreSQL, where transactions of several processes really overlap (SQLite runs one writer at a time,
    which hides a check-then-insert race rather than proving the check)."""
    only, calls = BROKEN_CAMPAIGNS[variant]
    run, _, _ = load_run(postgres.fresh, upstream, variant=variant, only=only, calls=calls)
    found = load.violations(run)
    print(f"\n{variant}: " + ", ".join(f"{name} {len(lines)}" for name, lines in found.items()))
    for name in BROKEN[variant]:
        assert found[name], f"{name} did not catch the {variant} allocator"
