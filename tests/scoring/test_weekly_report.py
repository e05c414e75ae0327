"""The weekly report against a hand-computed fixture.

The week is Jan 8 00:00 to Jan 15 00:00 (UTC). Five numbers:

| number | before the week | during the week | at the end |
|---|---|---|---|
| N1 | Healthy | Hiya "Spam Likely" on Jan 9; then 40 calls, 10 answered (Jan 10) | Flagged (AT&T) |
| N2 | Healthy; 10 calls on Jan 7 | 60 calls, 30 answered (Jan 10) | Healthy (TNS flags it on Jan 15, after the week) |
| N3 | Healthy | 3 complaints on Jan 12 | At Risk |
| N4 | Healthy | First Orion "Nuisance" on Jan 13; then 20 calls, 5 answered (Jan 14) | At Risk |
| N5 | (created Jan 11) | nothing | Healthy |

By hand:
- counts now: 2 Healthy (N2, N5), 2 At Risk (N3, N4), 1 Flagged (N1), 0 Blocked, 5 in all; a week ago 4 Healthy.
- changed: N1 Healthy→Flagged, N3 Healthy→At Risk, N4 Healthy→At Risk (worst first); N5 is new and Healthy.
- newly at risk: N3, N4.
- top causes: consumer complaints 1, labelled by First Orion 1, labelled by Hiya 1.
- outbound calls in the week: 40 + 60 + 20 = 120 (N2's 10 on Jan 7 and its 15 on Jan 15 are outside).
- placed from flagged numbers: N1's 40, all while AT&T labelled it: AT&T 40/120 = 1/3; T-Mobile and Verizon 0
  (First Orion's nuisance label on N4 is minor, not a flag).
- answer rate flagged: 10/40 = 0.25; clean: (30 + 5)/(60 + 20) = 0.4375.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoring.stack import A, B, phone

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.type.v1 import types_pb2 as types
from nhm_platform.protoconv import to_timestamp

N1, N2, N3, N4, N5 = (phone(i) for i in range(11, 16))
JAN = datetime(2026, 1, 1, tzinfo=UTC)


def at(day: int, hour: float = 0) -> datetime:
    return JAN + timedelta(days=day - 1, hours=hour)


def report(stack, end=None, metadata=A):
    request = spb.GetWeeklyReportRequest(period_end=to_timestamp(end)) if end else spb.GetWeeklyReportRequest()
    return stack.scoring.GetWeeklyReport(request, metadata=metadata).report


def test_weekly_report_matches_the_hand_computed_fixture(stack, clock):
    clock.set(at(6, 9))
    stack.create_numbers(N1, N2, N3, N4)
    clock.set(at(7, 18))
    stack.report(stack.calls.day(N2, at(7, 9), calls=10, answered=5))

    clock.set(at(9, 10))
    stack.observe(N1, types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM, raw_label="Spam Likely")
    clock.set(at(10, 18))
    stack.report(stack.calls.day(N1, at(10, 9), calls=40, answered=10, span=timedelta(hours=8)))
    stack.report(stack.calls.day(N2, at(10, 9), calls=60, answered=30, inbound=3, span=timedelta(hours=8)))
    clock.set(at(11, 9))
    stack.create_numbers(N5)
    clock.set(at(12, 11))
    stack.complain(N3, 3)
    clock.set(at(13, 15))
    stack.observe(N4, types.REPUTATION_SOURCE_FIRST_ORION, types.REPUTATION_LABEL_MINOR, raw_label="Nuisance")
    clock.set(at(14, 18))
    stack.report(stack.calls.day(N4, at(14, 9), calls=20, answered=5, inbound=1, span=timedelta(hours=8)))
    # After the week: more calls, and N2 flagged; the report for the week ending Jan 15 00:00 ignores both.
    clock.set(at(15, 12))
    stack.report(stack.calls.day(N2, at(15, 8), calls=15, answered=5, span=timedelta(hours=3)))
    stack.observe(N2, types.REPUTATION_SOURCE_TNS, types.REPUTATION_LABEL_SPAM)

    week = report(stack, at(15))
    assert week.tenant_id == "acme"
    assert (week.period_start.ToDatetime(UTC), week.period_end.ToDatetime(UTC)) == (at(8), at(15))
    assert week.counts_now == spb.StatusCounts(healthy=2, at_risk=2, flagged=1, blocked=0, total=5)
    assert week.counts_week_ago == spb.StatusCounts(healthy=4, at_risk=0, flagged=0, blocked=0, total=4)
    assert [(t.phone_number, t.from_status, t.to_status) for t in week.changed] == [
        (N1, types.HEALTH_STATUS_HEALTHY, types.HEALTH_STATUS_FLAGGED),
        (N3, types.HEALTH_STATUS_HEALTHY, types.HEALTH_STATUS_AT_RISK),
        (N4, types.HEALTH_STATUS_HEALTHY, types.HEALTH_STATUS_AT_RISK),
    ]
    assert week.changed[0].cause == "Hiya: Spam Likely"
    assert week.changed[0].transition_time.ToDatetime(UTC) == at(9, 10)
    assert list(week.changed[1].factors) == [spb.RISK_FACTOR_KIND_COMPLAINTS]
    assert list(week.changed[2].sources) == [types.REPUTATION_SOURCE_FIRST_ORION]
    assert list(week.newly_at_risk) == [N3, N4]
    assert [(c.description, c.factor, c.source, c.numbers) for c in week.top_causes] == [
        ("Consumer complaints", spb.RISK_FACTOR_KIND_COMPLAINTS, 0, 1),
        ("Labelled by First Orion", 0, types.REPUTATION_SOURCE_FIRST_ORION, 1),
        ("Labelled by Hiya", 0, types.REPUTATION_SOURCE_HIYA, 1),
    ]
    assert week.outbound_calls == 120
    shares = {c.carrier: (c.calls, c.calls_from_flagged, c.share) for c in week.flagged_call_share}
    assert shares == {types.CARRIER_ATT: (120, 40, 40 / 120), types.CARRIER_TMOBILE: (120, 0, 0.0),
                      types.CARRIER_VERIZON: (120, 0, 0.0)}
    assert week.answer_rate_flagged == 0.25
    assert week.answer_rate_clean == 0.4375

    # The default period ends now (Jan 15 12:00): N2 is Flagged by then, and its calls today count.
    now = report(stack)
    assert now.period_end.ToDatetime(UTC) == at(15, 12)
    assert now.counts_now == spb.StatusCounts(healthy=1, at_risk=2, flagged=2, blocked=0, total=5)
    assert now.outbound_calls == 40 + 60 + 20 + 15
    assert N2 in [t.phone_number for t in now.changed]

    # Another tenant's report sees none of it.
    other = report(stack, at(15), metadata=B)
    assert other.counts_now.total == 0 and other.outbound_calls == 0 and not other.changed
