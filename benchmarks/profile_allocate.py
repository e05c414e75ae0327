"""Where one allocation's time goes, without gRPC: Allocator.allocate in a loop, in this process.

    .venv/bin/python benchmarks/profile_allocate.py [--postgres URL] [--calls 3000] [--statements] [--profile]

Seeds a campaign of 100 numbers as benchmarks/bench_allocation.py does (SQLite in a temporary folder, or a
database it creates on the PostgreSQL server named by --postgres and drops afterwards), warms up, then allocates
--calls times from one thread (each prospect three times in a row: one index walk, two sticky calls) and prints
the wall time and this process's CPU per call and, on PostgreSQL, the CPU its backends spent per call (read from
/proc, so run it on the database's machine). --statements adds the wall time of each driver statement per call;
--profile a cProfile listing. It prints figures and never fails on a slow result.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import itertools
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_allocation as bench

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm_allocation.allocator import AllocationRequest, Allocator
from nhm_allocation.app import SPEC
from nhm_allocation.servicer import allocation_to_proto
from nhm_platform import statements
from nhm_platform.clock import SystemClock
from nhm_platform.db import Database
from nhm_platform.idempotency import fingerprint
from nhm_platform.migrations import upgrade


@contextlib.contextmanager
def database(postgres: str) -> Iterator[str]:
    if postgres:
        with bench.postgres_database(postgres) as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/allocation.db"


def backend_cpu_seconds(url: str) -> float:
    """CPU time of every backend connected to the database (0 on SQLite)."""
    if not url.startswith("postgresql"):
        return 0.0
    parsed = make_url(url)
    with psycopg.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
                         user=parsed.username or "postgres", dbname="postgres") as admin:
        pids = [row[0] for row in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                                (parsed.database,))]
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def time_statements() -> dict[str, list[float]]:
    """Wrap Compiled._run to add up each statement's wall time (keyed by its first words)."""
    spent: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    original = statements.Compiled._run

    def timed(self, session, params, *, fetch):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(self, session, params, fetch=fetch)
        finally:
            sql = " ".join(next(iter(self._plans.values())).sql.split())[:72]
            spent[sql][0] += 1
            spent[sql][1] += time.perf_counter() - started

    statements.Compiled._run = timed  # type: ignore[method-assign]
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="", help="postgresql+psycopg:// URL of a server to create a database on")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--statements", action="store_true", help="time each driver statement")
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing")
    args = parser.parse_args(argv)
    spent = time_statements() if args.statements else None
    prospects = bench.destinations()
    with database(args.postgres) as url:
        upgrade(url, SPEC.migrations_dir, SPEC.version_table)
        bench.seed(url, 0, 100, "profile")
        db = Database(url)
        allocator = Allocator(db, SystemClock(), window=16)
        counter = itertools.count()

        def allocate() -> None:
            i = next(counter)
            request = pb.AllocateNumberRequest(campaign_id="profile", destination=prospects[(i // 3) % len(prospects)],
                                               call_id=f"call-{i}")
            allocator.allocate(bench.TENANT, AllocationRequest(request.campaign_id, request.destination,
                                                               request.call_id, 0),
                               fingerprint=fingerprint(request, exclude=("call_id",)), respond=allocation_to_proto,
                               parse=pb.AllocateNumberResponse.FromString)

        for _ in range(200):
            allocate()
        if spent is not None:
            spent.clear()
        profiler = cProfile.Profile() if args.profile else None
        backend_before, cpu_before, started = backend_cpu_seconds(url), time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(args.calls):
            allocate()
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        backend = backend_cpu_seconds(url) - backend_before
        db.dispose()
    per = 1e6 / args.calls
    print(f"{args.calls} allocations ({'PostgreSQL' if args.postgres else 'SQLite'}): {wall * per:,.0f} µs wall, "
          f"{cpu * per:,.0f} µs CPU here, {backend * per:,.0f} µs database backend CPU per call")
    if spent is not None:
        for sql, (count, seconds) in sorted(spent.items(), key=lambda item: -item[1][1]):
            print(f"  {count / args.calls:5.2f} per call  {seconds / count * 1e6:7.0f} µs  {sql}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
