"""`make bench`: the hot paths measured against the machine's own limit, in one run, printed as one table.

    .venv/bin/python benchmarks/hotpaths.py [--duration 10] [--postgres URL] [--no-sqlite] [--decay] [--smoke]

Every service runs as its own process (`python -m nhm_<service>`, as `make run` starts them) against SQLite files
in a temporary folder and, when --postgres (or NHM_BENCH_POSTGRES_URL) names a server, against databases the
harness creates there and drops afterwards. This process seeds them and drives the load over loopback gRPC with
the same load generator for every figure (threads, a channel per 4 callers so that several server processes
sharing a port all get connections). It measures, in the same run:

- a bare unary echo server (one process, same thread pool, no interceptors): the baseline, at 1/8/32/64 callers;
- AllocateNumber with the real policy (local presence, sticky caller IDs, per-prospect limits; caps high enough
  not to run out, a calling window spanning the day) at 1/8/32/64 callers on a pool of 100 numbers, at 32 callers
  on a pool of 100,000, and at 32 callers with two server processes (NHM_ALLOCATION_WORKERS=2);
- outcome ingestion into scoring (batched: ReportCallOutcomes of 1,000; streamed: StreamCallOutcomes of 100)
  while 32 callers allocate, with scoring's rescore_delay at --rescore-delay (1 s unless said; the rate counts
  the time until every number is rescored);
- first-page latency of ListHealth (scoring) and ListNumbers (registry) with 100,000 numbers;
- with --decay, AllocateNumber at 32 callers for 120 s: the first and the last 10 s.

Each line gives its ratio to the echo at the same number of callers; the targets of the performance issue follow
the table, and everything is written to bench-results/<time>.json. Benchmarks print figures; they never fail on a
slow result. --smoke runs every measurement on tiny sizes for a fraction of a second (the CI test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_allocation as allocation_bench
import bench_scoring as scoring_bench
import grpc
from bench_allocation import postgres_databases
from load import Driven, drive, percentile

from nhm.allocation.v1 import allocation_pb2 as apb
from nhm.allocation.v1 import allocation_pb2_grpc
from nhm.registry.v1 import registry_pb2 as rpb
from nhm.registry.v1 import registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm_allocation.app import SPEC as ALLOCATION
from nhm_platform.database_roles import application_url
from nhm_platform.db import Database
from nhm_platform.migrations import upgrade
from nhm_platform.phone import Purpose, parse_phone_number
from nhm_platform.row_scope import platform_rows
from nhm_registry.app import SPEC as REGISTRY
from nhm_scoring import rescore_queue
from nhm_scoring.app import SPEC as SCORING

ROOT = Path(__file__).resolve().parents[1]
TENANT, KEY, SERVICE_KEY = allocation_bench.TENANT, allocation_bench.KEY, allocation_bench.SERVICE_KEY
METADATA = (("authorization", f"Bearer {KEY}"),)
CALLERS_PER_CHANNEL = 4
# Prospect exchanges: the allocation benchmark's (every local-presence tier) and more in the same areas, so that
# a long run never calls a prospect a fourth time in a day (the default per-prospect limit is 3).
MORE_EXCHANGES = ("415903", "415737", "212584", "212737", "305675", "312787", "213235", "617457")


@dataclass
class Figure:
    backend: str
    measure: str
    callers: int
    pool: int
    rate: float  # per second
    unit: str
    p50_ms: float
    p99_ms: float
    errors: int
    echo_rate_ratio: float | None = None
    echo_p99_ratio: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Sizes:
    callers: tuple[int, ...]
    small_pool: int
    large_pool: int
    listed: int
    duration: float
    repeat: int

    @classmethod
    def full(cls, duration: float) -> Sizes:
        return cls((1, 8, 32, 64), 100, 100_000, 100_000, duration, 200)

    @classmethod
    def smoke(cls) -> Sizes:
        return cls((1, 4), 20, 200, 200, 0.3, 5)

    @property
    def main_callers(self) -> int:
        return self.callers[-2] if len(self.callers) > 2 else self.callers[-1]


def destinations() -> list[str]:
    found = allocation_bench.destinations()
    for prefix in MORE_EXCHANGES:
        parse_phone_number(f"+1{prefix}1234", Purpose.DESTINATION)
        found += [f"+1{prefix}{line:04d}" for line in range(10_000)]
    return found


def figure(backend: str, measure: str, callers: int, pool: int, result: Driven, unit: str = "calls/s") -> Figure:
    return Figure(backend, measure, callers, pool, result.ok / result.seconds if result.seconds else 0.0, unit,
                  percentile(result.latencies_ms, 0.5), percentile(result.latencies_ms, 0.99), result.errors)


@contextlib.contextmanager
def channels(port: int, callers: int) -> Iterator[list[grpc.Channel]]:
    # A separate connection per channel (no shared subchannel), so SO_REUSEPORT spreads them over the workers.
    opened = [grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
              for _ in range(max(1, (callers + CALLERS_PER_CHANNEL - 1) // CALLERS_PER_CHANNEL))]
    try:
        yield opened
    finally:
        for channel in opened:
            channel.close()


def service_env(name: str, url: str, **settings: str) -> dict[str, str]:
    prefix = f"NHM_{name.upper()}_"
    env = {**os.environ, "NHM_API_KEYS": f"{TENANT}={KEY}", "NHM_SERVICE_KEY": SERVICE_KEY,
           "NHM_LOG_LEVEL": "warning", "NHM_LOG_FORMAT": "json", f"{prefix}DATABASE_URL": application_url(url),
           f"{prefix}PORT": "0",
           f"{prefix}MIGRATE_ON_START": "false", "NHM_MAX_WORKERS": "32"}
    env.update({f"{prefix}{key.upper()}": value for key, value in settings.items()})
    return env


@contextlib.contextmanager
def services(envs: dict[str, dict[str, str]]) -> Iterator[dict[str, int]]:
    """Start the named services as processes, all at once; their ports once every one serves."""
    started: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, env in envs.items():
            started[name] = subprocess.Popen([sys.executable, "-m", f"nhm_{name}"], stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, text=True, env=env)
        ports = {}
        for name, proc in started.items():
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith(f"NHM_SERVING {name}"):
                raise RuntimeError(f"{name} did not start: {line!r}")
            ports[name] = int(line.split()[-1])
        yield ports
    finally:
        for proc in started.values():
            proc.terminate()
        for proc in started.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- the measurements ---------------------------------------------------------------------------------------------

def bench_echo(sizes: Sizes) -> dict[int, Figure]:
    script = [sys.executable, str(Path(allocation_bench.__file__).resolve()), "--serve-echo", "--workers", "32"]
    payload = apb.AllocateNumberRequest(campaign_id="bench-100000", destination="+14159020001",
                                        call_id="bench-0000000000000").SerializeToString()
    found = {}
    with allocation_bench.running(script, dict(os.environ), "NHM_SERVING echo") as port:
        for callers in sizes.callers:
            with channels(port, callers) as opened:
                def caller(channel: grpc.Channel) -> Callable[[int], bool]:
                    echo = channel.unary_unary("/bench.Echo/Echo")

                    def call(_i: int) -> bool:
                        try:
                            echo(payload, timeout=30)
                            return True
                        except grpc.RpcError:
                            return False
                    return call
                calls = [caller(channel) for channel in opened]
                calls[0](0)
                found[callers] = figure("-", "bare gRPC echo", callers, 0, drive(calls, callers, sizes.duration))
                show(found[callers])
    return found


class Allocations:
    """AllocateNumber load against one database: every call a new call id, each prospect called 3 times, 1,000
    calls apart (the second and third reuse its sticky caller ID; no two calls to one prospect run at once)."""

    def __init__(self, backend: str, url: str, prospects: list[str]) -> None:
        self.backend, self.url, self.prospects = backend, url, prospects
        self._next = 0
        self._lock = threading.Lock()
        self.run = secrets.token_hex(4)

    def seed(self, size: int, first: int) -> None:
        allocation_bench.seed(self.url, first, size, f"bench-{size}")

    def _sequence(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def calls(self, opened: list[grpc.Channel], pool: int) -> list[Callable[[int], bool]]:
        def caller(channel: grpc.Channel) -> Callable[[int], bool]:
            stub = allocation_pb2_grpc.AllocationServiceStub(channel)

            def call(_i: int) -> bool:
                n = self._sequence()
                destination = self.prospects[((n // 3000) * 1000 + n % 1000) % len(self.prospects)]
                request = apb.AllocateNumberRequest(campaign_id=f"bench-{pool}", destination=destination,
                                                    call_id=f"{self.run}-{n}")
                try:
                    stub.AllocateNumber(request, metadata=METADATA, timeout=30)
                    return True
                except grpc.RpcError:
                    return False
            return call
        return [caller(channel) for channel in opened]

    def settle(self, port: int, pools: tuple[int, ...], callers: int, duration: float) -> None:
        """Allocations on every pool before anything is measured, then planner statistics of the ledger they
        wrote (allocation_bench.analyze): the state of a service in use, not of one started a second ago."""
        with channels(port, callers) as opened:
            for pool in pools:
                drive(self.calls(opened, pool), callers, duration)
        allocation_bench.analyze(self.url)

    def measure(self, port: int, pool: int, callers: int, duration: float, measure: str = "AllocateNumber",
                windows: float = 0.0) -> tuple[Figure, list[int]]:
        with channels(port, callers) as opened:
            calls = self.calls(opened, pool)
            for call in calls:  # warm up every connection
                call(0)
            result = drive(calls, callers, duration, windows)
        found = figure(self.backend, measure, callers, pool, result)
        show(found)
        return found, result.per_window


def bench_backend(backend: str, urls: dict[str, str], sizes: Sizes, prospects: list[str], decay: bool,
                  rescore_delay: float) -> list[Figure]:
    for spec in (ALLOCATION, SCORING, REGISTRY):
        upgrade(urls[spec.name], spec.migrations_dir, spec.version_table)
    load = Allocations(backend, urls["allocation"], prospects)
    load.seed(sizes.small_pool, 0)
    load.seed(sizes.large_pool, sizes.small_pool)
    scoring_settings = SCORING.load_settings(database_url=urls["scoring"], api_keys=f"{TENANT}={KEY}")
    scoring_bench.seed(urls["scoring"], TENANT, sizes.listed, scoring_settings)
    found: list[Figure] = []
    main = sizes.main_callers
    allocation_env = service_env("allocation", urls["allocation"], registry_target="", scoring_target="")
    envs = {"allocation": allocation_env, "registry": service_env("registry", urls["registry"]),
            "scoring": service_env("scoring", urls["scoring"], follow_registry="false", rescore_interval="3600",
                                   rescore_delay=str(rescore_delay))}
    with services(envs) as ports:
        load.settle(ports["allocation"], (sizes.small_pool, sizes.large_pool), main, min(2.0, sizes.duration))
        for callers in sizes.callers:
            found.append(load.measure(ports["allocation"], sizes.small_pool, callers, sizes.duration)[0])
        found.append(load.measure(ports["allocation"], sizes.large_pool, main, sizes.duration)[0])
        found += ingestion_while_allocating(backend, load, ports["allocation"], ports["scoring"], urls["scoring"],
                                            sizes)
        found.append(first_page(backend, "ListHealth first page", sizes, ports["scoring"], lambda channel: (
            scoring_pb2_grpc.ScoringServiceStub(channel).ListHealth, spb.ListHealthRequest(page_size=100))))
        found.append(registry_first_page(backend, ports["registry"], sizes))
        if decay:
            found.append(decay_run(load, ports["allocation"], sizes, main))
    with services({"allocation": {**allocation_env, "NHM_ALLOCATION_WORKERS": "2"}}) as ports:
        found.append(load.measure(ports["allocation"], sizes.small_pool, main, sizes.duration,
                                  "AllocateNumber, 2 workers")[0])
    return found


def ingestion_while_allocating(backend: str, load: Allocations, allocation_port: int, scoring_port: int,
                               scoring_url: str, sizes: Sizes) -> list[Figure]:
    """Outcomes into scoring, batched then streamed, each while `main` callers allocate; the allocation rate during
    each goes with it (extra["allocations_per_s"]). With a rescore delay, the time the service then takes to rescore
    the numbers still waiting counts too (extra["drain_s"]): the rate is of events whose health is written."""
    active = [scoring_bench.phone(i) for i in range(0, sizes.listed, 50)] or [scoring_bench.phone(0)]
    found = []
    for mode in ("batched", "streamed"):
        sent = [0]
        stop = threading.Event()
        failures: list[BaseException] = []

        def ingest(client: int, mode: str = mode, sent: list[int] = sent, stop: threading.Event = stop,
                   failures: list[BaseException] = failures) -> None:
            with grpc.insecure_channel(f"127.0.0.1:{scoring_port}",
                                       options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                stub = scoring_pb2_grpc.ScoringServiceStub(channel)
                round_ = 0
                try:
                    while not stop.is_set():
                        round_ += 1
                        if mode == "batched":
                            events = scoring_bench.outcomes(active, 1000, f"{load.run}-{mode}-{client}-{round_}")
                            stub.ReportCallOutcomes(spb.ReportCallOutcomesRequest(outcomes=events),
                                                    metadata=METADATA, timeout=120)
                        else:
                            events = scoring_bench.outcomes(active, 2000, f"{load.run}-{mode}-{client}-{round_}")
                            stub.StreamCallOutcomes(
                                (spb.StreamCallOutcomesRequest(outcomes=part)
                                 for part in scoring_bench.batches(events, 100)), metadata=METADATA, timeout=120)
                        sent[0] += len(events)
                except BaseException as exc:  # noqa: BLE001 - reported with the figure
                    failures.append(exc)

        clients = [threading.Thread(target=ingest, args=(i,)) for i in range(2 if mode == "batched" else 1)]
        started = time.perf_counter()
        for client in clients:
            client.start()
        allocated, _ = load.measure(allocation_port, sizes.small_pool, sizes.main_callers, sizes.duration,
                                    f"AllocateNumber while ingesting {mode}")
        stop.set()
        for client in clients:
            client.join()
        drained = time.perf_counter()
        wait_rescored(scoring_url)
        seconds = time.perf_counter() - started
        ingested = Figure(backend, f"outcomes ingested {mode} (while allocating)", len(clients), 0,
                          sent[0] / seconds, "events/s", 0.0, 0.0, len(failures),
                          extra={"allocations_per_s": allocated.rate, "drain_s": time.perf_counter() - drained})
        show(ingested)
        print(f"{'':<11} ingestion {mode}: every number rescored {ingested.extra['drain_s']:.2f} s after the last "
              "report (counted in the rate)", flush=True)
        if failures:
            print(f"{'':<11} ingestion {mode}: {len(failures)} request(s) failed, first: {failures[0]!r}"[:300],
                  flush=True)
        found += [allocated, ingested]
    return found


def wait_rescored(scoring_url: str, timeout: float = 300.0) -> None:
    """Until scoring's background pass has rescored every number its ingestion marked (rescore_delay > 0)."""
    db = Database(application_url(scoring_url))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with platform_rows(), db.read() as session:
                if not rescore_queue.pending(session):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"scoring left numbers unscored for {timeout:.0f} s")
    finally:
        db.dispose()


def first_page(backend: str, measure: str, sizes: Sizes, port: int,
               method: Callable[[grpc.Channel], tuple[Any, Any]]) -> Figure:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call, request = method(channel)
        latencies = []
        errors = 0
        call(request, metadata=METADATA, timeout=60)
        started = time.perf_counter()
        for _ in range(sizes.repeat):
            begun = time.perf_counter()
            try:
                call(request, metadata=METADATA, timeout=60)
            except grpc.RpcError:
                errors += 1
            latencies.append((time.perf_counter() - begun) * 1000)
        result = Driven(len(latencies) - errors, errors, time.perf_counter() - started, latencies)
    found = figure(backend, measure, 1, sizes.listed, result)
    show(found)
    return found


def registry_first_page(backend: str, port: int, sizes: Sizes) -> Figure:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for start in range(0, sizes.listed, 10_000):
            specs = [rpb.NumberSpec(phone_number=scoring_bench.phone(i))
                     for i in range(start, min(sizes.listed, start + 10_000))]
            stub.BatchCreateNumbers(rpb.BatchCreateNumbersRequest(numbers=specs), metadata=METADATA, timeout=600)
    return first_page(backend, "ListNumbers first page", sizes, port, lambda channel: (
        registry_pb2_grpc.RegistryServiceStub(channel).ListNumbers, rpb.ListNumbersRequest(page_size=100)))


def decay_run(load: Allocations, port: int, sizes: Sizes, callers: int) -> Figure:
    duration = 120.0 if sizes.duration >= 5 else sizes.duration * 4
    window = duration / 12
    found, per_window = load.measure(port, sizes.small_pool, callers, duration, f"AllocateNumber {duration:.0f} s",
                                     windows=window)
    first, last = per_window[0] / window, per_window[-1] / window
    found.extra = {"first_window_per_s": first, "last_window_per_s": last,
                   "last_to_first": last / first if first else 0.0}
    print(f"{'':<11} decay: first {window:.1f} s {first:,.0f} calls/s, last {last:,.0f} calls/s", flush=True)
    return found


# --- report ------------------------------------------------------------------------------------------------------

HEADER = (f"{'backend':<11} {'measure':<44} {'callers':>7} {'pool':>7} {'rate':>9} {'unit':<9} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6} {'x echo':>7} {'x echo p99':>10}")


def show(f: Figure) -> None:
    ratio = f"{f.echo_rate_ratio:>7.2f}" if f.echo_rate_ratio is not None else f"{'':>7}"
    p99 = f"{f.echo_p99_ratio:>10.2f}" if f.echo_p99_ratio is not None else f"{'':>10}"
    print(f"{f.backend:<11} {f.measure:<44} {f.callers:>7} {f.pool:>7} {f.rate:>9,.0f} {f.unit:<9} "
          f"{f.p50_ms:>7.1f} {f.p99_ms:>7.1f} {f.errors:>6} {ratio} {p99}", flush=True)


def with_echo_ratios(figures: list[Figure], echo: dict[int, Figure]) -> None:
    for f in figures:
        base = echo.get(f.callers)
        if base is None or f.unit != "calls/s" or f.measure.startswith("List"):
            continue
        f.echo_rate_ratio = f.rate / base.rate if base.rate else 0.0
        f.echo_p99_ratio = f.p99_ms / base.p99_ms if base.p99_ms else 0.0


def targets(figures: list[Figure], sizes: Sizes) -> list[dict[str, Any]]:
    """The performance issue's targets, each as measured per backend (None where not measured)."""
    checks = []
    main = sizes.main_callers
    for backend in sorted({f.backend for f in figures} - {"-"}):
        def one(measure: str, callers: int | None = None, pool: int | None = None, backend: str = backend
                ) -> Figure | None:
            return next((f for f in figures if f.backend == backend and f.measure == measure
                         and (callers is None or f.callers == callers) and (pool is None or f.pool == pool)), None)
        small = one("AllocateNumber", main, sizes.small_pool)
        large = one("AllocateNumber", main, sizes.large_pool)
        two = one("AllocateNumber, 2 workers", main)
        batched = one("outcomes ingested batched (while allocating)")
        health, listed = one("ListHealth first page"), one("ListNumbers first page")
        decay = next((f for f in figures if f.backend == backend and f.extra.get("last_to_first") is not None), None)
        rows = [
            (f"AllocateNumber at {main} callers / echo", small.echo_rate_ratio if small else None, ">=", 0.5),
            (f"AllocateNumber p99 at {main} callers / echo p99", small.echo_p99_ratio if small else None, "<=", 2.0),
            (f"pool {sizes.large_pool:,} / pool {sizes.small_pool:,}",
             large.rate / small.rate if large and small and small.rate else None, ">=", 0.9),
            ("2 workers / 1 worker", two.rate / small.rate if two and small and small.rate else None, ">=", 1.6),
            ("ingested events/s / allocations/s (batched)",
             batched.rate / batched.extra["allocations_per_s"] if batched and batched.extra["allocations_per_s"]
             else None, ">=", 10.0),
            ("ListHealth first page p99 ms", health.p99_ms if health else None, "<=", 50.0),
            ("ListNumbers first page p99 ms", listed.p99_ms if listed else None, "<=", 50.0),
            ("last 10 s / first 10 s of 120 s", decay.extra["last_to_first"] if decay else None, ">=", 0.9),
        ]
        for what, value, op, target in rows:
            met = None if value is None else (value >= target if op == ">=" else value <= target)
            checks.append({"backend": backend, "target": what, "value": value, "op": op, "goal": target, "met": met})
    return checks


def machine() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average": [load1, load5, load15], "python": platform.python_version(),
            "grpcio": grpc.__version__, "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput figure")
    parser.add_argument("--postgres", default=os.environ.get("NHM_BENCH_POSTGRES_URL", ""),
                        help="postgresql+psycopg:// URL of a server to create databases on (NHM_BENCH_POSTGRES_URL)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--decay", action="store_true", help="add the 120 s AllocateNumber run (32 callers)")
    parser.add_argument("--rescore-delay", type=float, default=1.0,
                        help="scoring's rescore_delay: 0 rescores in each ingesting transaction (the default of the "
                             "service); more leaves it to the background pass, as a high-volume deployment would")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, fractions of a second (CI)")
    parser.add_argument("--out", default=str(ROOT / "bench-results"), help="folder for the JSON results")
    args = parser.parse_args(argv)
    sizes = Sizes.smoke() if args.smoke else Sizes.full(args.duration)
    started = datetime.now(UTC)
    before = machine()
    print(f"machine: {before['cpus']} CPUs, load average {before['load_average'][0]:.1f} at start", flush=True)
    print(HEADER, flush=True)
    prospects = destinations()
    echo = bench_echo(sizes)
    figures: list[Figure] = list(echo.values())
    backends = [] if args.no_sqlite else ["sqlite"]
    backends += ["postgresql"] if args.postgres else []
    for backend in backends:
        with contextlib.ExitStack() as stack:
            if backend == "sqlite":
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                urls = {name: f"sqlite:///{folder / name}.db" for name in ("allocation", "scoring", "registry")}
            else:
                urls = stack.enter_context(postgres_databases(args.postgres))
            figures += bench_backend(backend, urls, sizes, prospects, args.decay, args.rescore_delay)
    with_echo_ratios(figures, echo)
    after = machine()
    print(f"\nOne run, {started:%Y-%m-%d %H:%M} UTC; ratios are to the bare echo at the same number of callers "
          f"(load average {before['load_average'][0]:.1f} at start, {after['load_average'][0]:.1f} at end)")
    print(HEADER)
    for f in figures:
        show(f)
    checks = targets(figures, sizes)
    print(f"\n{'backend':<11} {'target':<50} {'measured':>9}  goal")
    for c in checks:
        value = "-" if c["value"] is None else f"{c['value']:.2f}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[c["met"]]
        print(f"{c['backend']:<11} {c['target']:<50} {value:>9}  {c['op']} {c['goal']:g}  {verdict}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"hotpaths-{started:%Y%m%dT%H%M%S}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps({"started": started.isoformat(), "command": sys.argv, "sizes": asdict(sizes),
                                "machine_at_start": before, "machine_at_end": after,
                                "figures": [asdict(f) for f in figures], "targets": checks}, indent=2))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
