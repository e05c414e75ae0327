"""Where a batch of call outcomes' time goes, without gRPC: Ingestion.report_calls in a loop, in this process.

    .venv/bin/python benchmarks/profile_ingest.py [--postgres URL] [--numbers 2000] [--batches 20] [--profile] [--defer]

Seeds --numbers numbers as benchmarks/bench_scoring.py does (SQLite in a temporary folder, or a database it
creates next to the one --postgres names and drops afterwards) and scores them, then sends --batches batches of
--batch outcomes over every 50th number, as `make bench` does (its batches of 1,000 touch 1,000 numbers), after one
batch of warm-up. It prints the wall time per batch and per event, this process's CPU, the PostgreSQL backends'
CPU (read from /proc, so run it on the database's machine) and the time of each step of a batch; --profile adds a
cProfile listing. It prints figures and never fails on a slow result.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_allocation
import bench_scoring as bench
from profile_allocate import backend_cpu_seconds

from nhm_platform.clock import SystemClock
from nhm_platform.db import Database
from nhm_platform.logs import configure_logging
from nhm_platform.migrations import upgrade
from nhm_scoring import buckets, health_store, ingestion, raw_events, rescore_queue
from nhm_scoring.app import SPEC
from nhm_scoring.ingestion import Ingestion, IngestLimits
from nhm_scoring.servicer import call_outcome

# The steps of a batch that are timed apart: (module, function name, label).
STEPS = ((raw_events, "insert_calls", "raw insert"), (ingestion, "standings", "standings"),
         (buckets, "apply", "bucket upserts"), (ingestion, "rescore", "rescoring"),
         (health_store.HealthWrites, "flush", "rescoring: health writes"), (rescore_queue, "mark", "marks"))


@contextlib.contextmanager
def database(postgres: str) -> Iterator[str]:
    if postgres:
        with bench_allocation.postgres_databases(postgres, ("scoring",)) as urls:
            yield urls["scoring"]
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/scoring.db"


def time_steps() -> dict[str, float]:
    """Wrap each step to add up its wall time; rescoring's own inner steps are timed within it."""
    spent: dict[str, float] = defaultdict(float)
    for owner, name, label in STEPS:
        original = getattr(owner, name)

        def timed(*args: Any, original: Callable[..., Any] = original, label: str = label, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        setattr(owner, name, timed)
    # rescoring.rescore calls these through their modules, so it finds the wrapped ones.
    for owner, name, label in ((health_store, "load", "rescoring: health read"),
                               (buckets, "load_days", "rescoring: bucket reads"),
                               (buckets, "load_hours", "rescoring: bucket reads"),
                               (buckets, "load_short_calls", "rescoring: bucket reads")):
        original = getattr(owner, name)

        def inner(*args: Any, original: Callable[..., Any] = original, label: str = label, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        setattr(owner, name, inner)
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="", help="postgresql+psycopg:// URL (a sibling database is used)")
    parser.add_argument("--numbers", type=int, default=100_000, help="numbers of the tenant (every 50th is active)")
    parser.add_argument("--batch", type=int, default=1000, help="outcomes per batch")
    parser.add_argument("--batches", type=int, default=20, help="batches timed")
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing of the timed batches")
    parser.add_argument("--defer", action="store_true",
                        help="mark the numbers for the background pass (rescore_delay > 0) instead of rescoring")
    args = parser.parse_args(argv)
    configure_logging("json", "warning")
    tenant = f"bench-{secrets.token_hex(3)}"
    with database(args.postgres) as url:
        # Connected as the URL's role, as profile_allocate.py is: the application role sees rows only within the
        # row scope a server sets per call.
        settings = SPEC.load_settings(database_url=url, migration_database_url=url, follow_registry=False,
                                      log_format="json", log_level="warning")
        upgrade(url, SPEC.migrations_dir, SPEC.version_table)
        seeded = bench.seed(url, tenant, args.numbers, settings)
        active = [bench.phone(i) for i in range(0, args.numbers, 50)] or [bench.phone(0)]
        db = Database(settings.database_url)
        try:
            worker = Ingestion(db, SystemClock(), IngestLimits(max_batch=settings.max_batch_events,
                                                               max_stream_batch=settings.max_stream_batch_events,
                                                               max_clock_skew=timedelta(seconds=settings.max_clock_skew),
                                                               csv_chunk=settings.csv_chunk_rows),
                               defer_rescoring=args.defer)

            def batch(name: str) -> list[Any]:
                return [call_outcome(m) for m in bench.outcomes(active, args.batch, f"{tenant}-{name}")]

            worker.report_calls(tenant, batch("warm-up"))
            prepared = [batch(str(i)) for i in range(args.batches)]
            spent = time_steps()
            profiler = cProfile.Profile() if args.profile else None
            cpu, backends, wall = time.process_time(), backend_cpu_seconds(url), time.perf_counter()
            if profiler:
                profiler.enable()
            for events in prepared:
                summary = worker.report_calls(tenant, events)
                assert summary.accepted == len(events), f"{summary.accepted} of {len(events)} accepted"
            if profiler:
                profiler.disable()
            wall = time.perf_counter() - wall
            cpu, backends = time.process_time() - cpu, backend_cpu_seconds(url) - backends
        finally:
            db.dispose()
    events = args.batch * args.batches
    print(f"{db.dialect}: {args.numbers:,} numbers seeded and scored in {seeded:.1f} s; {args.batches} batches of "
          f"{args.batch:,} over {min(len(active), args.batch):,} numbers")
    print(f"  per batch: {wall / args.batches * 1e3:,.1f} ms wall, {cpu / args.batches * 1e3:,.1f} ms CPU here, "
          f"{backends / args.batches * 1e3:,.1f} ms database backends; {events / wall:,.0f} events/s")
    for label, seconds in spent.items():
        print(f"  {label:<28} {seconds / args.batches * 1e3:8.1f} ms a batch")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
