"""The scoring repositories against a real database, on both backends: what the windows read back, and sets of
numbers larger than one statement takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from nhm_platform import statements
from nhm_platform.db import Database
from nhm_platform.row_scope import platform_rows, tenant_rows
from nhm_scoring import buckets, number_replica, raw_events
from nhm_scoring.activity import HourlyActivity, Windows, epoch_hour
from nhm_scoring.app import SPEC
from nhm_scoring.events import OUTBOUND, CallOutcome
from nhm_scoring.models import hourly_buckets, numbers, prospect_daily
from nhm_scoring.policy import DEFAULTS
from nhm_scoring.sql_upserts import add_counts

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
BUSY, QUIET, OLD, OTHER = "+14155550101", "+14155550102", "+14155550103", "+14155550104"


def test_the_hour_windows_add_up_their_own_hours_and_nothing_else(database_url):
    hour = epoch_hour(NOW)
    windows = Windows.at(NOW, DEFAULTS)  # 24 hours for the busiest hour, 3 days (to the hour) for SIP 608s
    rows = [(BUSY, hour, 7, 0), (BUSY, hour - 23, 40, 1), (BUSY, hour - 24, 90, 2), (BUSY, hour - 71, 0, 4),
            (BUSY, hour - 72, 0, 10),
            (QUIET, hour - 3, 0, 0),  # a bucket with nothing in it: no activity
            (OLD, hour - 200, 300, 30),  # older than both windows
            (OTHER, hour, 500, 50)]  # another tenant's
    db = Database(database_url(SPEC))
    try:
        with platform_rows(), db.transaction() as session:
            session.execute(insert(hourly_buckets), [
                {"tenant_id": "other" if phone == OTHER else "t1", "phone_number": phone, "hour": at,
                 "outbound": outbound, "sip608": sip608} for phone, at, outbound, sip608 in rows])
        with tenant_rows("t1"), db.transaction() as session:
            found = buckets.load_hours(session, "t1", [BUSY, QUIET, OLD, OTHER], windows)
    finally:
        db.dispose()
    assert found == {BUSY: HourlyActivity(busiest_outbound=40, sip608=7, any_calls=True),
                     QUIET: HourlyActivity(busiest_outbound=0, sip608=0, any_calls=False)}


@pytest.mark.parametrize("per_statement", [7, 500])
def test_a_set_of_numbers_larger_than_one_statement_takes_is_read_whole(database_url, monkeypatch, per_statement):
    monkeypatch.setattr(statements, "SET_LIMIT", per_statement)
    mine = [f"+1415555{i:04d}" for i in range(0, 2_400, 2)]  # 1,200 of the tenant's numbers
    theirs = [f"+1415555{i:04d}" for i in range(1, 2_400, 2)]  # as many of another tenant's
    db = Database(database_url(SPEC))
    try:
        with platform_rows(), db.transaction() as session:
            session.execute(insert(numbers), [
                {"tenant_id": tenant, "phone_number": phone, "area_code": "415", "attestation": "A",
                 "inbound_enabled": False, "state": "ACTIVE", "update_time": NOW}
                for tenant, phones in (("t1", mine), ("t2", theirs)) for phone in phones])
        with platform_rows(), db.transaction() as session:
            asked = [*mine, *theirs, "+14155559999"]
            assert number_replica.known(session, "t1", asked) == set(mine)
            assert number_replica.known(session, "t2", asked[::-1]) == set(theirs)
            assert number_replica.known(session, "t1", []) == set()
    finally:
        db.dispose()


def test_a_batch_of_raw_events_larger_than_one_statement_is_claimed_once_and_its_times_compare_right(database_url):
    """333 events (several multi-row statements on SQLite): every one is claimed once, a retry claims none, and
    each row's time is stored so that the database orders and prunes by it exactly (the 300th as the 1st)."""
    times = [NOW - timedelta(minutes=i) for i in range(333)]  # whole minutes: no fraction of a second to print
    events = [CallOutcome(f"e{i}", BUSY, OUTBOUND, "", at, False, 0, 0, 0) for i, at in enumerate(times)]
    db = Database(database_url(SPEC))
    try:
        with tenant_rows("t1"), db.transaction() as session:
            assert raw_events.insert_calls(session, "t1", events, NOW) == {e.event_id for e in events}
        with tenant_rows("t1"), db.transaction() as session:
            assert raw_events.insert_calls(session, "t1", events[::-1], NOW) == set()
            assert _utc(raw_events.recent_outbound_times(session, "t1", BUSY, 333)) == times
        with platform_rows(), db.transaction() as session:
            assert raw_events.prune(session, before=times[300]) == 32  # strictly before: the 300th stays
        with tenant_rows("t1"), db.transaction() as session:
            assert _utc(raw_events.recent_outbound_times(session, "t1", BUSY, 333)) == times[:301]
    finally:
        db.dispose()


def _utc(times: list[datetime]) -> list[datetime]:
    """SQLite gives back naive UTC times."""
    return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times]


def test_counts_added_over_many_statements_return_every_row_written(database_url):
    rows = [{"tenant_id": "t1", "phone_number": BUSY, "day": 20_000, "remote_number": f"+1212555{i:04d}",
             "calls": 1 + i % 3} for i in range(333)]
    keys = ("tenant_id", "phone_number", "day", "remote_number")
    db = Database(database_url(SPEC))
    try:
        for round_ in (1, 2):
            with tenant_rows("t1"), db.transaction() as session:
                written = add_counts(session, prospect_daily, rows, keys, returning=("remote_number", "calls"))
            assert sorted(written) == sorted((r["remote_number"], round_ * r["calls"]) for r in rows)
    finally:
        db.dispose()
