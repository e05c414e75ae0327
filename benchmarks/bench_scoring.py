"""Scoring benchmark: call-outcome ingest throughput and health-list latency, through a real server on loopback.

    .venv/bin/python benchmarks/bench_scoring.py [--numbers 100000] [--events 50000] [--postgres URL]

For each backend (SQLite in a temporary folder; PostgreSQL when --postgres is given: the benchmark creates and
drops its own database next to the one named, since the scoring schema must not meet other services' tables):

1. Seed: the tenant's numbers are written to scoring's registry replica (as the registry feed would) with 5%
   labelled Spam Likely by Hiya, 5% Potential Spam by First Orion and 10% in a campaign, then every number is
   scored (the pass a registry snapshot triggers), creating each health row, its first history entry and feed entry.
2. Ingest: outbound and inbound call outcomes for 2% of the numbers (at least one), over the last 12 hours,
   through ReportCallOutcomes in batches (one client, then four at once) and through StreamCallOutcomes (one
   stream, messages of 100). Every event is new, is folded into the buckets and rescores its number.
3. ListHealth: the first page of 100 numbers, unfiltered and with the dashboard's filters; p50/p99 of --repeat calls.
Figures are printed; the benchmark never fails on a slow result.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
from load import timed
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm.type.v1 import types_pb2 as types
from nhm_platform.clock import SystemClock
from nhm_platform.database_roles import application_url
from nhm_platform.db import Database
from nhm_platform.logs import configure_logging
from nhm_platform.migrations import upgrade
from nhm_platform.protoconv import to_duration, to_timestamp
from nhm_platform.service import start_service
from nhm_scoring.app import SPEC
from nhm_scoring.housekeeping import Housekeeper
from nhm_scoring.models import assignments, numbers, source_labels
from nhm_scoring.reputation import Label, Source

PAGE = 100
AREA_CODES = ("415", "212", "305", "512")
SEED_CHUNK = 5_000


def phone(i: int) -> str:
    area = AREA_CODES[i % len(AREA_CODES)]
    n = i // len(AREA_CODES)
    return f"+1{area}{200 + n // 10_000:03d}{n % 10_000:04d}"


def seed(url: str, tenant: str, count: int, settings: Any) -> float:
    """Numbers, labels and assignments as the registry feed and observations would leave them; then score all."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    db = Database(url)
    try:
        for start in range(0, count, SEED_CHUNK):
            rows = range(start, min(count, start + SEED_CHUNK))
            with db.transaction() as session:
                session.execute(insert(numbers), [
                    {"tenant_id": tenant, "phone_number": phone(i), "area_code": AREA_CODES[i % 4],
                     "attestation": "A" if i % 3 else "B", "inbound_enabled": True, "state": "ACTIVE",
                     "update_time": now} for i in rows])
                labels = [{"tenant_id": tenant, "phone_number": phone(i), "source": int(src), "label": int(lbl),
                           "raw_label": "", "score": None, "observe_time": now - timedelta(hours=1)}
                          for i in rows for src, lbl in _labels(i)]
                if labels:
                    session.execute(insert(source_labels), labels)
                campaign = [{"tenant_id": tenant, "campaign_id": "bench-campaign", "phone_number": phone(i)}
                            for i in rows if i % 10 == 0]
                if campaign:
                    session.execute(insert(assignments), campaign)
        analyze(db)
        Housekeeper(db, SystemClock(), settings).rescore_tenant(tenant)
        analyze(db)
    finally:
        db.dispose()
    return time.perf_counter() - started


def analyze(db: Database) -> None:
    """PostgreSQL: fresh planner statistics after a bulk load, as autovacuum gathers them soon after."""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()


def _labels(i: int) -> list[tuple[Source, Label]]:
    if i % 20 == 1:
        return [(Source.HIYA, Label.SPAM)]
    if i % 20 == 2:
        return [(Source.FIRST_ORION, Label.MINOR)]
    return []


def outcomes(active: list[str], total: int, prefix: str) -> list[spb.CallOutcome]:
    """total call outcomes spread over the active numbers and the last 12 hours; 1 in 10 inbound."""
    now = datetime.now(UTC)
    rng = random.Random(prefix)
    made = []
    for i in range(total):
        answered = rng.random() < 0.2
        made.append(spb.CallOutcome(
            event_id=f"{prefix}-{i}", phone_number=active[i % len(active)],
            direction=spb.CALL_DIRECTION_INBOUND if i % 10 == 9 else spb.CALL_DIRECTION_OUTBOUND,
            remote_number=f"+1212736{rng.randrange(10_000):04d}",
            start_time=to_timestamp(now - timedelta(seconds=rng.randrange(12 * 3600))), answered=answered,
            talk_duration=to_duration(timedelta(seconds=rng.randrange(5, 300) if answered else 0)),
            sip_code=200 if answered else 480,
            disposition=spb.CALL_DISPOSITION_ANSWERED if answered else spb.CALL_DISPOSITION_NO_ANSWER))
    return made


def batches(events: list[spb.CallOutcome], size: int) -> Iterator[list[spb.CallOutcome]]:
    for i in range(0, len(events), size):
        yield events[i:i + size]


def ingest_batched(stub: Any, metadata: Any, events: list[spb.CallOutcome], size: int, clients: int) -> float:
    parts = [events[i::clients] for i in range(clients)]
    failures: list[BaseException] = []

    def send(part: list[spb.CallOutcome]) -> None:
        try:
            for batch in batches(part, size):
                reply = stub.ReportCallOutcomes(spb.ReportCallOutcomesRequest(outcomes=batch), metadata=metadata,
                                                timeout=600)
                assert reply.summary.accepted == len(batch), reply.summary
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return len(events) / (time.perf_counter() - started)


def ingest_streamed(stub: Any, metadata: Any, events: list[spb.CallOutcome], size: int) -> float:
    started = time.perf_counter()
    requests = (spb.StreamCallOutcomesRequest(outcomes=batch) for batch in batches(events, size))
    reply = stub.StreamCallOutcomes(requests, metadata=metadata, timeout=600)
    assert reply.summary.accepted == len(events), reply.summary
    return len(events) / (time.perf_counter() - started)


def run_backend(name: str, url: str, count: int, total_events: int, batch: int, repeat: int) -> list[tuple[str, str]]:
    key = f"nhm_bench_{secrets.token_hex(12)}"
    tenant = f"bench-{secrets.token_hex(3)}"
    settings = SPEC.load_settings(
        host="127.0.0.1", port=0, database_url=application_url(url), migration_database_url=url,
        log_format="json", log_level="warning", grace_period=0.0,
        api_keys=f"{tenant}={key}", follow_registry=False, rescore_interval=3600.0)
    upgrade(url, SPEC.migrations_dir, SPEC.version_table)
    rows = [("numbers scored (seed)", f"{count:,} in {seed(url, tenant, count, settings):.1f} s")]
    running, port = start_service(SPEC, settings)
    metadata = (("authorization", f"Bearer {key}"),)
    active = [phone(i) for i in range(0, count, 50)] or [phone(0)]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}",
                                   options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            third = max(1, total_events // 3)
            rate = ingest_batched(stub, metadata, outcomes(active, third, "one"), batch, 1)
            rows.append((f"ingest batched ({batch}/request, 1 client)", f"{rate:,.0f} events/s"))
            rate = ingest_batched(stub, metadata, outcomes(active, third, "four"), batch, 4)
            rows.append((f"ingest batched ({batch}/request, 4 clients)", f"{rate:,.0f} events/s"))
            rate = ingest_streamed(stub, metadata, outcomes(active, third, "stream"), 100)
            rows.append(("ingest streamed (100/message)", f"{rate:,.0f} events/s"))
            requests = {
                "ListHealth first page": spb.ListHealthRequest(page_size=PAGE),
                "ListHealth status=Flagged": spb.ListHealthRequest(page_size=PAGE,
                                                                   statuses=[types.HEALTH_STATUS_FLAGGED]),
                "ListHealth area code": spb.ListHealthRequest(page_size=PAGE, area_code="415"),
                "ListHealth source=Hiya": spb.ListHealthRequest(page_size=PAGE,
                                                                source=types.REPUTATION_SOURCE_HIYA),
                "ListHealth campaign": spb.ListHealthRequest(page_size=PAGE, campaign_id="bench-campaign"),
            }
            first = stub.ListHealth(requests["ListHealth first page"], metadata=metadata)
            assert first.counts.total == count, first.counts
            for what, request in requests.items():
                p50, p99 = timed(lambda request=request: stub.ListHealth(request, metadata=metadata), repeat)
                rows.append((what, f"p50 {p50:.1f} ms  p99 {p99:.1f} ms"))
            p50, p99 = timed(lambda: stub.GetWeeklyReport(spb.GetWeeklyReportRequest(), metadata=metadata),
                             max(3, repeat // 10))
            rows.append(("GetWeeklyReport", f"p50 {p50:.1f} ms  p99 {p99:.1f} ms"))
    finally:
        running.stop(0)
    return [(name, *row) for row in rows]


def postgres_database(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database next to the one named, and a function that drops it."""
    base = make_url(url)
    name = f"{base.database or 'postgres'}_scoring_bench_{secrets.token_hex(3)}"

    def admin() -> psycopg.Connection[Any]:
        return psycopg.connect(host=base.host or "127.0.0.1", port=base.port or 5432,
                               user=base.username or "postgres", password=base.password,
                               dbname=base.database or "postgres", autocommit=True)

    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.set(database=name).render_as_string(hide_password=False), drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=100_000, help="numbers of the benchmark tenant")
    parser.add_argument("--events", type=int, default=30_000, help="call outcomes to ingest (three runs share them)")
    parser.add_argument("--batch", type=int, default=1000, help="events per ReportCallOutcomes request")
    parser.add_argument("--repeat", type=int, default=50, help="calls per latency figure")
    parser.add_argument("--postgres", default="", help="postgresql+psycopg:// URL (a sibling database is used)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args(argv)
    configure_logging("json", "warning")
    print(f"{'backend':<11} {'measure':<42} figure", flush=True)

    def show(results: list[tuple[str, str, str]]) -> None:
        for backend, what, figure in results:
            print(f"{backend:<11} {what:<42} {figure}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        if not args.no_sqlite:
            show(run_backend("sqlite", f"sqlite:///{Path(folder) / 'scoring.db'}", args.numbers, args.events,
                             args.batch, args.repeat))
        if args.postgres:
            url, drop = postgres_database(args.postgres)
            try:
                show(run_backend("postgresql", url, args.numbers, args.events, args.batch, args.repeat))
            finally:
                drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
