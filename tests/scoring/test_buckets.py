"""The bucket repository against a real database, on both backends: what the windows read back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from nhm_platform.db import Database
from nhm_platform.row_scope import platform_rows, tenant_rows
from nhm_scoring import buckets
from nhm_scoring.activity import HourlyActivity, Windows, epoch_hour
from nhm_scoring.app import SPEC
from nhm_scoring.models import hourly_buckets
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
