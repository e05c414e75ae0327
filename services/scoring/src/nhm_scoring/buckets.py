"""Repository of the hourly and daily buckets: add a batch's increments, read the windows back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from nhm_platform.statements import set_filters
from nhm_scoring.activity import DailyCounts, HourlyActivity, Windows
from nhm_scoring.folding import Increments
from nhm_scoring.models import daily_buckets, hourly_buckets, prospect_daily, talk_histogram
from nhm_scoring.sql_upserts import add_counts

DAY_COLUMNS = ("outbound", "answered", "inbound", "talk_ms", "blocked", "complaints")
HOUR_COLUMNS = ("outbound", "answered", "sip608", "flagged_outbound", "flagged_answered", "flagged_tmobile",
                "flagged_att", "flagged_verizon")
def apply(session: Session, tenant_id: str, increments: Increments) -> None:
    """Add a batch's increments to the buckets (incrementally: no bucket is recomputed from raw events)."""
    busiest: dict[tuple[str, int], int] = defaultdict(int)
    prospect_rows = [{"tenant_id": tenant_id, "phone_number": phone, "day": day, "remote_number": remote,
                      "calls": calls} for (phone, day, remote), calls in increments.prospects.items()]
    for phone, day, calls in add_counts(session, prospect_daily, prospect_rows,
                                        ("tenant_id", "phone_number", "day", "remote_number"),
                                        returning=("phone_number", "day", "calls")):
        busiest[(phone, day)] = max(busiest[(phone, day)], int(calls))
    day_rows = []
    for key in set(increments.days) | set(busiest):
        counts = increments.days.get(key, {})
        row = {"tenant_id": tenant_id, "phone_number": key[0], "day": key[1],
               **{c: int(counts.get(c, 0)) for c in DAY_COLUMNS}, "max_prospect_calls": busiest.get(key, 0)}
        day_rows.append(row)
    add_counts(session, daily_buckets, day_rows, ("tenant_id", "phone_number", "day"),
               larger=("max_prospect_calls",))
    hour_rows = [{"tenant_id": tenant_id, "phone_number": phone, "hour": hour,
                  **{c: int(counts.get(c, 0)) for c in HOUR_COLUMNS}}
                 for (phone, hour), counts in increments.hours.items()]
    add_counts(session, hourly_buckets, hour_rows, ("tenant_id", "phone_number", "hour"))
    talk_rows = [{"tenant_id": tenant_id, "phone_number": phone, "day": day, "seconds": seconds, "calls": calls}
                 for (phone, day, seconds), calls in increments.talk.items()]
    add_counts(session, talk_histogram, talk_rows, ("tenant_id", "phone_number", "day", "seconds"))


def load_days(session: Session, tenant_id: str, phones: Collection[str], first_day: int,
              last_day: int) -> dict[str, list[DailyCounts]]:
    t = daily_buckets.c
    found: dict[str, list[DailyCounts]] = defaultdict(list)
    for among in set_filters(session, t.phone_number, phones):
        rows = session.execute(
            select(t.phone_number, t.day, t.outbound, t.answered, t.inbound, t.talk_ms, t.blocked, t.complaints,
                   t.max_prospect_calls)
            .where(t.tenant_id == tenant_id, among, t.day >= first_day, t.day <= last_day))
        for r in rows:
            found[r.phone_number].append(DailyCounts(int(r.day), r.outbound, r.answered, r.inbound, int(r.talk_ms),
                                                     r.blocked, r.complaints, r.max_prospect_calls))
    return found


def load_hours(session: Session, tenant_id: str, phones: Collection[str],
               windows: Windows) -> dict[str, HourlyActivity]:
    """The hour windows of each number that has buckets in them, added up in the database: one row a number
    instead of one an hour."""
    t = hourly_buckets.c
    busiest = func.max(case((t.hour >= windows.first_hour_24h, t.outbound), else_=0))
    sip608 = func.sum(case((t.hour >= windows.first_hour_blocked, t.sip608), else_=0))
    any_calls = func.max(case(((t.outbound > 0) | (t.sip608 > 0), 1), else_=0))
    found: dict[str, HourlyActivity] = {}
    for among in set_filters(session, t.phone_number, phones):
        rows = session.execute(select(t.phone_number, busiest, sip608, any_calls)
                               .where(t.tenant_id == tenant_id, among,
                                      t.hour >= windows.first_hour)
                               .group_by(t.phone_number))
        found.update({phone: HourlyActivity(int(most or 0), int(rejected or 0), bool(calls))
                      for phone, most, rejected, calls in rows})
    return found


def load_short_calls(session: Session, tenant_id: str, phones: Collection[str], first_day: int, last_day: int,
                     below_seconds: int) -> dict[str, int]:
    """Answered outbound calls with talk time under below_seconds, per number, over the days given."""
    t = talk_histogram.c
    found: dict[str, int] = {}
    for among in set_filters(session, t.phone_number, phones):
        rows = session.execute(
            select(t.phone_number, func.sum(t.calls))
            .where(t.tenant_id == tenant_id, among, t.day >= first_day, t.day <= last_day,
                   t.seconds < below_seconds)
            .group_by(t.phone_number))
        found.update({phone: int(total or 0) for phone, total in rows})
    return found


def short_calls_by_day(session: Session, tenant_id: str, phone: str, first_day: int, last_day: int,
                       below_seconds: int) -> dict[int, int]:
    t = talk_histogram.c
    rows = session.execute(
        select(t.day, func.sum(t.calls))
        .where(t.tenant_id == tenant_id, t.phone_number == phone, t.day >= first_day, t.day <= last_day,
               t.seconds < below_seconds)
        .group_by(t.day))
    return {int(day): int(total or 0) for day, total in rows}


@dataclass(frozen=True)
class PeriodTotals:
    """A tenant's outbound calls over a period, and those placed from numbers that were flagged."""

    outbound: int = 0
    answered: int = 0
    flagged_outbound: int = 0
    flagged_answered: int = 0
    flagged_tmobile: int = 0
    flagged_att: int = 0
    flagged_verizon: int = 0


def period_totals(session: Session, tenant_id: str, first_hour: int, end_hour: int) -> PeriodTotals:
    """Sums over the hours first_hour <= hour < end_hour."""
    t = hourly_buckets.c
    columns: Sequence[str] = ("outbound", "answered", "flagged_outbound", "flagged_answered", "flagged_tmobile",
                              "flagged_att", "flagged_verizon")
    row = session.execute(
        select(*(func.coalesce(func.sum(t[c]), 0) for c in columns))
        .where(t.tenant_id == tenant_id, t.hour >= first_hour, t.hour < end_hour)).one()
    return PeriodTotals(*(int(v) for v in row))


def prune(session: Session, *, before_hour: int, before_day: int, prospects_before_day: int) -> int:
    """Drop buckets no window needs any more; returns the rows dropped."""
    dropped = session.execute(delete(hourly_buckets).where(hourly_buckets.c.hour < before_hour)).rowcount or 0
    dropped += session.execute(delete(daily_buckets).where(daily_buckets.c.day < before_day)).rowcount or 0
    dropped += session.execute(delete(talk_histogram).where(talk_histogram.c.day < before_day)).rowcount or 0
    dropped += session.execute(
        delete(prospect_daily).where(prospect_daily.c.day < prospects_before_day)).rowcount or 0
    return int(dropped)
