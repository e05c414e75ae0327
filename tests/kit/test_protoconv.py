"""The kit's time conversions give exactly what protobuf's own (slower) ones give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from nhm_platform.protoconv import from_timestamp, to_timestamp

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30)), None])


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES))
def test_a_time_becomes_the_timestamp_protobuf_makes_of_it_and_back(when: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))  # naive times are UTC (SQLite's)
    assert to_timestamp(when) == expected
    assert from_timestamp(expected) == expected.ToDatetime(tzinfo=UTC)


@given(st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999_999))
def test_every_valid_timestamp_reads_as_protobuf_reads_it(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    assert from_timestamp(ts) == ts.ToDatetime(tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "nanos"), [(253_402_300_800, 0), (-62_135_596_801, 0), (10**12, 0), (0, -1),
                                                (0, 1_000_000_000)])
def test_an_invalid_timestamp_is_refused_as_protobuf_refuses_it(seconds: int, nanos: int) -> None:
    with pytest.raises(ValueError, match="Timestamp is not valid"):
        from_timestamp(Timestamp(seconds=seconds, nanos=nanos))


def test_no_time_is_no_timestamp() -> None:
    assert to_timestamp(None) is None
