"""Allocation benchmark: AllocateNumber throughput and latency next to a bare gRPC echo, measured in one run.

    .venv/bin/python benchmarks/bench_allocation.py [--pools 100,100000] [--callers 32] [--duration 10]
                                                    [--postgres URL] [--no-sqlite]

For each backend (SQLite in a temporary folder; PostgreSQL when --postgres names a server: the benchmark
creates its own database there and drops it afterwards) and each pool size, the allocation service's replica
tables are seeded directly (one campaign, numbers over several area codes, as the registry feed would leave
them), the service runs as its own process (`python -m nhm_allocation`, feeds off), and `--callers` threads
call AllocateNumber for `--duration` seconds with distinct call ids and prospects spread over area codes
(local presence, sticky caller IDs and per-prospect limits are on; caps are set high enough not to run out,
and the calling window spans the whole day so the figures do not depend on the hour). A bare unary echo
server (a separate process, same thread pool size, no interceptors) is driven the same way first; each line
shows its ratio to the echo. Benchmarks print figures; they never fail on a slow result.

`--compare-row-security` (PostgreSQL) measures what row-level security costs: the same run in a second database
whose tables have it disabled (the service, still the application role, sends its settings all the same), and
the round trip of the one statement every transaction adds to set them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
from load import drive, percentile
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.allocation.v1 import allocation_pb2_grpc
from nhm.registry.v1 import registry_pb2
from nhm.type.v1 import types_pb2
from nhm_allocation.app import SPEC
from nhm_allocation.enums import Gate
from nhm_allocation.models import campaigns, number_usage, numbers, pool_members
from nhm_platform.database_roles import application_url, ensure_login_role
from nhm_platform.migrations import upgrade
from nhm_platform.phone import Purpose, parse_phone_number
from nhm_platform.settings import ServerSettings

TENANT, KEY, SERVICE_KEY = "bench", "nhm_bench_tenant_key_0123456789", "nhm_bench_service_key_0123456789"
# Where the pool's numbers are: (area code, state, time zone).
POOL_AREAS = (("415", "CA", "America/Los_Angeles"), ("212", "NY", "America/New_York"),
              ("305", "FL", "America/New_York"), ("312", "IL", "America/Chicago"))
# Prospects: the pool's area codes (area-code tier), another California code (region tier) and Boston
# (country tier).
PROSPECT_EXCHANGES = ("415902", "415736", "212583", "212736", "305674", "312786", "213234", "617456")


@dataclass
class Result:
    label: str
    pool: str
    calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def start_process(args: list[str], env: dict[str, str], marker: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith(marker):
        proc.kill()
        raise RuntimeError(f"{args} did not start: {line!r}")
    return proc, int(line.split()[-1])


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], marker: str) -> Iterator[int]:
    proc, port = start_process(args, env, marker)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve_echo(workers: int) -> None:
    """A bare unary echo server: the cost of a gRPC call and nothing else."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    echo = grpc.unary_unary_rpc_method_handler(lambda request, _context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"NHM_SERVING echo {port}", flush=True)
    server.wait_for_termination()


def destinations() -> list[str]:
    """Valid prospects over several area codes (10,000 per exchange; one checked per exchange)."""
    found = []
    for prefix in PROSPECT_EXCHANGES:
        parse_phone_number(f"+1{prefix}1234", Purpose.DESTINATION)
        found += [f"+1{prefix}{line:04d}" for line in range(10_000) if not 100 <= line < 200 or prefix[3:] != "555"]
    return found


def pool_phone(i: int) -> tuple[str, tuple[str, str, str]]:
    area = POOL_AREAS[i % len(POOL_AREAS)]
    n = i // len(POOL_AREAS)
    return f"+1{area[0]}{200 + n // 10_000:03d}{n % 10_000:04d}", area


def seed(url: str, first: int, size: int, campaign_id: str) -> None:
    """One campaign and `size` ACTIVE numbers (from the first-th), as the registry feed would leave the replica."""
    policy = registry_pb2.CallingPolicy(
        daily_cap_per_number=1_000_000, hourly_cap_per_number=1_000_000,
        calling_window_start=types_pb2.TimeOfDay(hours=0), calling_window_end=types_pb2.TimeOfDay(hours=0))
    now = datetime.now(UTC)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(campaigns).values(tenant_id=TENANT, campaign_id=campaign_id, name="bench",
                                                        policy=policy.SerializeToString(), update_time=now))
            for start in range(first, first + size, 10_000):
                rows = [pool_phone(i) for i in range(start, min(first + size, start + 10_000))]
                connection.execute(insert(numbers), [
                    {"tenant_id": TENANT, "phone_number": phone, "country": "US", "area_code": area,
                     "exchange": phone[5:8], "region": state, "time_zone": zone, "display_name": "Bench",
                     "state": types_pb2.LIFECYCLE_STATE_ACTIVE, "rest_until": None, "warmup_caps": "20,40,60,100",
                     "warmup_step_seconds": 259_200, "warmup_start_time": None, "update_time": now}
                    for phone, (area, state, zone) in rows])
                connection.execute(insert(number_usage), [
                    {"tenant_id": TENANT, "phone_number": phone, "day_start": 0, "day_used": 0, "hour_start": 0,
                     "hour_used": 0, "last_ms": 0} for phone, _ in rows])
                connection.execute(insert(pool_members), [
                    {"tenant_id": TENANT, "campaign_id": campaign_id, "phone_number": phone,
                     "gate": int(Gate.OPEN), "country": "US", "area_key": f"US-{area}", "region_key": f"US-{state}",
                     "day_start": 0, "day_used": 0, "last_ms": 0} for phone, (area, state, _) in rows])
    finally:
        engine.dispose()
    analyze(url)  # statistics, as the replica refreshes them after a bulk apply


def analyze(url: str) -> None:
    """Fresh planner statistics, as the table's owner (the service's role may not ANALYZE it). After a warm-up
    too: autovacuum analyzes a table within a minute of its first rows, so a service in use has statistics of
    its ledger; without them the planner, taking the table for empty, reads a prospect's recent calls through
    the campaign index (1 ms a batch instead of 50 us)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_databases(server_url: str, services: Iterable[str] = ("allocation", "scoring", "registry"),
                       prefix: str = "nhm_bench") -> Iterator[dict[str, str]]:
    """A fresh database per service on the server named by server_url, dropped afterwards; the application role
    the services connect as is created first if the server lacks it (migrations grant it what it needs)."""
    base = make_url(server_url)
    ensure_login_role(server_url, ServerSettings.database_app_role)
    names = {service: f"{prefix}_{service}_{os.getpid()}" for service in services}
    admin = psycopg.connect(host=base.host or "127.0.0.1", port=base.port or 5432, user=base.username or "postgres",
                            password=base.password, dbname=base.database or "postgres", autocommit=True)
    try:
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        yield {service: base.set(database=name).render_as_string(hide_password=False)
               for service, name in names.items()}
    finally:
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def postgres_database(server_url: str, prefix: str = "nhm_bench") -> Iterator[str]:
    """A fresh database for allocation on the server named by server_url, dropped afterwards."""
    with postgres_databases(server_url, ("allocation",), prefix) as urls:
        yield urls["allocation"]


def bench_allocation(backend: str, url: str, pools: list[int], callers: int, duration: float,
                     prospects: list[str], row_security: bool = True) -> list[Result]:
    upgrade(url, SPEC.migrations_dir, SPEC.version_table)
    if not row_security:
        disable_row_security(url)
        backend += " RLS off"
    results = []
    offset = 0  # prospects already called in this database (a prospect may be called 3 times a day)
    seeded = 0
    env = {**os.environ, "NHM_ALLOCATION_DATABASE_URL": application_url(url), "NHM_ALLOCATION_PORT": "0",
           "NHM_ALLOCATION_REGISTRY_TARGET": "", "NHM_ALLOCATION_SCORING_TARGET": "",
           "NHM_ALLOCATION_MIGRATE_ON_START": "false", "NHM_API_KEYS": f"{TENANT}={KEY}",
           "NHM_SERVICE_KEY": SERVICE_KEY, "NHM_LOG_LEVEL": "warning", "NHM_LOG_FORMAT": "json"}
    for size in pools:
        campaign_id = f"bench-{size}"
        seed(url, seeded, size, campaign_id)
        seeded += size
        with running([sys.executable, "-m", "nhm_allocation"], env, "NHM_SERVING allocation") as port, \
                grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = allocation_pb2_grpc.AllocationServiceStub(channel)
            metadata = (("authorization", f"Bearer {KEY}"),)
            run = f"{backend}-{size}-{time.time_ns()}"

            def allocate(i: int, stub=stub, metadata=metadata, campaign_id=campaign_id, run=run,
                         offset=offset) -> bool:
                # Each prospect gets 3 calls (the default daily limit per prospect), 1,000 calls apart: the second
                # and third reuse its sticky caller ID, and no two calls to one prospect run at once.
                n = offset + i + 1
                destination = prospects[((n // 3000) * 1000 + n % 1000) % len(prospects)]
                request = pb.AllocateNumberRequest(campaign_id=campaign_id, destination=destination,
                                                   call_id=f"{run}-{i}")
                try:
                    stub.AllocateNumber(request, metadata=metadata, timeout=30)
                    return True
                except grpc.RpcError:
                    return False

            allocate(-1)  # warm up
            warm = drive([functools.partial(allocate, run=f"{run}-warm-up")], callers, min(2.0, duration))
            offset += (warm.ok + warm.errors) // 3000 * 3000 + 3000
            analyze(url)
            driven = drive([functools.partial(allocate, offset=offset)], callers, duration)
            offset += (driven.ok + driven.errors) // 3000 * 3000 + 3000
            results.append(Result(f"AllocateNumber {backend}", f"{size:,}", driven.ok, driven.errors,
                                  driven.seconds, percentile(driven.latencies_ms, 0.5),
                                  percentile(driven.latencies_ms, 0.99)))
    return results


def disable_row_security(owner_url: str) -> None:
    """For comparison only: the tables without row-level security (as their owner)."""
    engine = create_engine(owner_url)
    try:
        with engine.begin() as connection:
            for (table,) in connection.execute(text("SELECT relname FROM pg_class WHERE relrowsecurity"
                                                    " AND relnamespace = current_schema()::regnamespace")):
                connection.execute(text(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY'))
                connection.execute(text(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY'))
    finally:
        engine.dispose()


def bench_scope_statement(owner_url: str, transactions: int = 3000) -> None:
    """Microseconds a transaction takes (BEGIN, one primary-key read, COMMIT) with and without the statement
    that sets its row scope, as the application role on this server; alternated, best of 5 each."""
    parsed = make_url(application_url(owner_url))
    connection = psycopg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                 password=parsed.password, dbname=parsed.database)
    scope = "SELECT set_config('nhm.tenant_id', %s, true), set_config('nhm.platform', '', true)"

    def run(with_scope: bool) -> float:
        started = time.perf_counter()
        for i in range(transactions):
            with connection.transaction():
                if with_scope:
                    connection.execute(scope, (TENANT,))
                connection.execute("SELECT 1 FROM prospects WHERE tenant_id = %s AND destination = %s",
                                   (TENANT, f"+1415{i:07d}")).fetchall()
        return (time.perf_counter() - started) / transactions * 1e6

    try:
        plain, scoped = [], []
        for _ in range(5):
            plain.append(run(False))
            scoped.append(run(True))
    finally:
        connection.close()
    print(f"\nrow scope statement: transaction {min(plain):.0f} us without it, {min(scoped):.0f} us with it "
          f"(+{min(scoped) - min(plain):.0f} us, one round trip; best of 5 x {transactions:,})", flush=True)


def bench_echo(callers: int, duration: float, workers: int) -> Result:
    script = [sys.executable, str(Path(__file__).resolve()), "--serve-echo", "--workers", str(workers)]
    payload = pb.AllocateNumberRequest(campaign_id="bench-100000", destination="+14159020001",
                                       call_id="bench-0000000000000").SerializeToString()
    with running(script, dict(os.environ), "NHM_SERVING echo") as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary("/bench.Echo/Echo")

        def call(_i: int) -> bool:
            try:
                echo(payload, timeout=30)
                return True
            except grpc.RpcError:
                return False

        call(0)
        driven = drive([call], callers, duration)
    return Result("bare gRPC echo", "-", driven.ok, driven.errors, driven.seconds,
                  percentile(driven.latencies_ms, 0.5), percentile(driven.latencies_ms, 0.99))


def report(results: list[Result], echo: Result, callers: int) -> None:
    print(f"\n{callers} concurrent callers; ratios are to the bare echo measured in the same run")
    print(f"{'what':<30} {'pool':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'x echo calls/s':>15} {'x echo p99':>11}")
    for r in [echo, *results]:
        print(f"{r.label:<30} {r.pool:>8} {r.rate:>9.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>7} "
              f"{r.rate / echo.rate if echo.rate else 0:>15.2f} {r.p99_ms / echo.p99_ms if echo.p99_ms else 0:>11.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", default="100,100000", help="comma-separated pool sizes (numbers per campaign)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=32, help="server threads (echo and allocation alike)")
    parser.add_argument("--postgres", default="", help="postgresql+psycopg:// URL of a server to create a database on")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--compare-row-security", action="store_true",
                        help="PostgreSQL: also run with row-level security off, and time the row scope statement")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo(args.workers)
        return 0
    os.environ["NHM_ALLOCATION_MAX_WORKERS"] = str(args.workers)
    pools = [int(p) for p in args.pools.split(",") if p.strip()]
    prospects = destinations()
    echo = bench_echo(args.callers, args.duration, args.workers)
    results: list[Result] = []
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            results += bench_allocation("sqlite", f"sqlite:///{folder}/allocation.db", pools, args.callers,
                                        args.duration, prospects)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            results += bench_allocation("postgresql", url, pools, args.callers, args.duration, prospects)
            if args.compare_row_security:
                bench_scope_statement(url)
        if args.compare_row_security:
            with postgres_database(args.postgres, "nhm_bench_allocation_rls_off") as url:
                results += bench_allocation("postgresql", url, pools, args.callers, args.duration, prospects,
                                            row_security=False)
    report(results, echo, args.callers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
