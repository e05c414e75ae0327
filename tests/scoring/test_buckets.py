"""The scoring repositories against a real database, on both backends: what the windows read back, and sets of
numbers larger than one statement takes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from nhm_platform.db import Database
from nhm_platform.row_scope import platform_rows, tenant_rows
from nhm_scoring import buckets, number_replica, phone_filters
from nhm_scoring.activity import HourlyActivity, Windows, epoch_hour
from nhm_scoring.app import SPEC
from nhm_scoring.models import hourly_buckets, numbers
from nhm_scoring.policy import DEFAULTS

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
    monkeypatch.setattr(phone_filters, "SQLITE_CHUNK", per_statement)
    monkeypatch.setattr(phone_filters, "POSTGRES_CHUNK", per_statement)
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
