"""Every allocation promise under load: two allocation processes on one database (PostgreSQL, and a SQLite file
shared by both processes), three client processes with 16 threads each, retries racing across processes,
demand ten times capacity.

Each invariant is also run once against a deliberately broken allocator (allocation_process.py) and must
catch it: a check that cannot fail proves nothing. NHM_RELIABILITY_SCALE (default 1) multiplies calls, caps and
prospects for the long version (`make reliability`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from invariants import load

from nhm_allocation.app import SPEC

SCALE = load.SCALE
pytestmark = load.RELIABILITY_MARKS
CLIENTS, THREADS, PROCESSES, TIMEOUT = 3, 16, 2, 20.0

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


def load_run(fresh_database, upstream, *, variant: str = "", only: set[str] | None = None,
             scale: int = 1, calls: float = 1.0) -> tuple[load.Run, float]:
    campaigns = [c for c in load.scenario(scale) if only is None or c.campaign_id in only]
    for c in campaigns:
        c.calls = int(c.calls * calls)
    load.publish(upstream, campaigns)
    url = fresh_database(SPEC)
    with ThreadPoolExecutor(PROCESSES) as pool:
        processes = list(pool.map(lambda _: load.start_allocation(url, upstream.address, variant),
                                  range(PROCESSES)))
    try:
        targets = [p.address for p in processes]
        load.wait_caught_up(targets, upstream)
        began = time.monotonic()
        records, releases = load.run_clients(targets, load.Jobs.plan(campaigns, CLIENTS, PROCESSES),
                                             threads=THREADS, timeout=TIMEOUT)
        seconds = time.monotonic() - began
        records += load.replay(targets[0], records, limit=100, timeout=TIMEOUT)
    finally:
        for process in processes:
            process.stop()
    return load.Run(campaigns, records, load.Ledger.read(url), releases), seconds


def test_every_invariant_holds_under_load(database_url, upstream, backend):
    run, seconds = load_run(database_url, upstream, scale=SCALE)
    found = load.violations(run)
    found["outlived_deadline"] = load.outlived_deadline(run)
    found["unexpected_errors"] = load.unexpected_errors(run)
    sends = sum(1 for r in run.records if not r.get("replay"))
    print(f"\nload on {backend}: {PROCESSES} allocation processes, {CLIENTS} client processes x {THREADS} threads, "
          f"{sends} sends and {len(run.releases)} releases in {seconds:.1f} s ({sends / seconds:.0f} sends/s), "
          f"outcomes {dict(run.outcomes())}")
    for name, lines in found.items():
        print(f"  {name}: {len(lines)}")
    assert run.outcomes()["allocated"] > 0
    assert not any(found.values()), {k: v[:5] for k, v in found.items() if v}


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_each_invariant_catches_its_broken_variant(postgres, upstream, variant):
    """On PostgreSQL, where transactions of several processes really overlap (SQLite runs one writer at a time,
    which hides a check-then-insert race rather than proving the check)."""
    only, calls = BROKEN_CAMPAIGNS[variant]
    run, _ = load_run(postgres.fresh, upstream, variant=variant, only=only, calls=calls)
    found = load.violations(run)
    print(f"\n{variant}: " + ", ".join(f"{name} {len(lines)}" for name, lines in found.items()))
    for name in BROKEN[variant]:
        assert found[name], f"{name} did not catch the {variant} allocator"
