"""How long a refusal takes to explain itself at a large pool: every member at its daily cap, so the walk finds
nobody and the refusal counts the pool. Times the tally as the allocator builds it (the database counting kinds of
alike members, `repository.member_kinds`) against judging every member in Python (`repository.all_members`, what
a refusal did before), in-process, and checks that both give the same tally.

    .venv/bin/python benchmarks/bench_refusal.py [--numbers 100000] [--repeat 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_allocation import TENANT, postgres_database, seed

from nhm_allocation import repository
from nhm_allocation.app import SPEC
from nhm_allocation.decision import Tally
from nhm_allocation.eligibility import Call, Place, exclusion
from nhm_allocation.enums import Carrier
from nhm_allocation.models import number_usage
from nhm_allocation.policy import CallingPolicy
from nhm_platform.migrations import upgrade

CAMPAIGN = "refusal"
CAP = 5


def capped_pool(url: str, size: int) -> Call:
    """`size` members, each with CAP calls today and this hour; the call they all refuse."""
    upgrade(url, SPEC.migrations_dir, SPEC.version_table)
    seed(url, 0, size, CAMPAIGN)
    now = datetime.now(UTC)
    today = int(now.timestamp()) // 3600 * 3600
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(update(number_usage).values(day_start=today, day_used=CAP, hour_start=today,
                                                           hour_used=CAP))
    finally:
        engine.dispose()
    return Call(now, CallingPolicy(daily_cap=CAP), Place("US", "415", "902", "CA"), Carrier.UNSPECIFIED, today,
                today)


def by_kinds(session: Session, call: Call) -> Tally:
    tally = Tally()
    for like, members in repository.member_kinds(session, TENANT, CAMPAIGN, destination_exchange="902",
                                                 day_start=call.day_start, hour_start=call.hour_start):
        tally.consider_many(members, exclusion(like, call))
    return tally


def member_by_member(session: Session, call: Call) -> Tally:
    tally = Tally()
    for candidate in repository.all_members(session, TENANT, CAMPAIGN):
        tally.consider(candidate.phone_number, exclusion(candidate, call))
    return tally


def measure(url: str, backend: str, size: int, repeat: int) -> None:
    call = capped_pool(url, size)
    engine = create_engine(url)
    try:
        tallies = {}
        for label, count in (("member by member (before)", member_by_member), ("kinds (now)", by_kinds)):
            seconds = []
            for _ in range(repeat):
                with Session(engine) as session:
                    started = time.perf_counter()
                    tally = count(session, call)
                    seconds.append(time.perf_counter() - started)
            tallies[label] = (tally.size, dict(tally.excluded))
            print(f"refusal tally [{backend}, {size:,} members]: {label}: {statistics.median(seconds) * 1000:,.0f} ms "
                  f"median of {repeat} ({tally.size:,} considered)")
        if len(set(map(str, tallies.values()))) != 1:
            raise SystemExit(f"the tallies differ: {tallies}")
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also on this PostgreSQL server (a database is created)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{folder}/allocation.db", "sqlite", args.numbers, args.repeat)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            measure(url, "postgresql", args.numbers, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
