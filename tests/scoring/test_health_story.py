"""Acceptance: realistic call histories through the real registry and scoring servers, and the health they produce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoring.stack import A, carriers, factor, phone, status, triggered

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.type.v1 import types_pb2 as types

NUMBER = phone(1)
JAN = datetime(2026, 1, 1, tzinfo=UTC)


def at(day: int, hour: float) -> datetime:
    return JAN + timedelta(days=day - 1, hours=hour)


def test_a_number_goes_at_risk_then_flagged_then_blocked_and_recovers(stack, clock):
    clock.set(at(4, 7))
    stack.create_numbers(NUMBER)
    assert status(stack.health(NUMBER)) == "HEALTHY"

    # Jan 4, 08:00-20:00: 180 outbound calls, 7 answered (3.9%), 10 inbound: too many calls, too few answered.
    clock.set(at(4, 20.5))
    summary = stack.report(stack.calls.day(NUMBER, at(4, 8), calls=180, answered=7, inbound=10))
    assert (summary.accepted, summary.duplicates, summary.rejected) == (190, 0, 0)
    health = stack.health(NUMBER)
    assert status(health) == "AT_RISK"
    assert not health.sources  # no carrier or app has labelled it: this is the early warning
    assert triggered(health) == {"DAILY_VOLUME", "ANSWER_RATE"}
    volume = factor(health, spb.RISK_FACTOR_KIND_DAILY_VOLUME)
    assert (volume.value, volume.threshold, volume.weight) == (180, 150, 30)
    assert volume.detail == "180 calls today; threshold 150"
    assert volume.advice.startswith("Rotate across multiple numbers")
    answer = factor(health, spb.RISK_FACTOR_KIND_ANSWER_RATE)
    assert answer.value == 7 / 180 and answer.threshold == 0.08
    assert answer.advice == "Improve list quality, use Local Presence."
    assert "3.9% of 180 outbound calls answered" in answer.detail
    assert "180 calls per day" in health.summary and "answer rate 3.9% below 8%" in health.summary
    assert 0 < health.score < 70
    assert set(carriers(health).values()) == {"HEALTHY"}
    at_risk_since = health.status_time

    # Jan 4, 21:00: Hiya (AT&T's engine) says "Spam Likely": Flagged, on AT&T only.
    clock.set(at(4, 21))
    assert stack.observe(NUMBER, types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM,
                         raw_label="Spam Likely").accepted == 1
    health = stack.health(NUMBER)
    assert status(health) == "FLAGGED"
    assert carriers(health) == {"CARRIER_ATT": "FLAGGED", "CARRIER_TMOBILE": "HEALTHY", "CARRIER_VERIZON": "HEALTHY"}
    [hiya] = health.sources
    assert (hiya.source, hiya.label, hiya.raw_label, hiya.weight) == (
        types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM, "Spam Likely", 1.0)
    assert status(hiya) == "FLAGGED"
    assert health.status_time.ToDatetime(UTC) == at(4, 21) > at_risk_since.ToDatetime(UTC)
    assert health.summary.startswith("Flagged: Hiya: Spam Likely.") and "AT&T" in health.summary
    assert health.score <= 39

    # Jan 5, 09:00: five calls answered with SIP 608 (an analytics engine blocks them): Blocked.
    clock.set(at(5, 9.5))
    blocked = [stack.calls.outbound(NUMBER, at(5, 9) + timedelta(minutes=5 * i), sip=608,
                                    disposition=spb.CALL_DISPOSITION_BLOCKED) for i in range(5)]
    assert stack.report(blocked).accepted == 5
    health = stack.health(NUMBER)
    assert status(health) == "BLOCKED"
    burst = factor(health, spb.RISK_FACTOR_KIND_BLOCKED_CALLS)
    assert (burst.triggered, burst.value, burst.threshold) == (True, 5, 5)
    assert burst.advice == "Remove from active campaigns."
    assert "5 SIP 608 rejections in 3 days" in health.summary
    assert health.score <= 9

    # Jan 5, 12:00: Hiya re-observes the number clean; the label is gone but the block still stands.
    clock.set(at(5, 12))
    stack.observe(NUMBER, types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_CLEAN)
    health = stack.health(NUMBER)
    assert status(health) == "BLOCKED"
    assert carriers(health)["CARRIER_ATT"] == "HEALTHY"
    assert [status(s) for s in health.sources] == ["HEALTHY"]

    # Jan 7: more dialling, answered calls only a few seconds long.
    clock.set(at(7, 20))
    stack.report(stack.calls.day(NUMBER, at(7, 8), calls=100, answered=4, talk=5))
    assert status(stack.health(NUMBER)) == "BLOCKED"

    # Jan 8, 10:00: the 608 burst has left its 3-day window; time alone moves the number, to At Risk for how it
    # is dialled now.
    clock.set(at(8, 10))
    assert stack.rescore_now().changed >= 1
    health = stack.health(NUMBER)
    assert status(health) == "AT_RISK"
    assert triggered(health) == {"ANSWER_RATE", "SHORT_CALLS", "AVERAGE_TALK_TIME", "INBOUND_USAGE"}

    # Jan 8: healthy traffic (140 calls, 40% answered, a minute each, some inbound): Healthy again.
    clock.set(at(8, 22))
    stack.report(stack.calls.day(NUMBER, at(8, 8), calls=140, answered=56, talk=60, inbound=5))
    health = stack.health(NUMBER)
    assert status(health) == "HEALTHY", health.summary
    assert triggered(health) == set()
    assert set(carriers(health).values()) == {"HEALTHY"}
    assert health.score == 100
    assert health.status_time.ToDatetime(UTC) == at(8, 22)

    history = stack.history(NUMBER)
    assert [(status(t, "from_status"), status(t, "to_status")) for t in history] == [
        ("AT_RISK", "HEALTHY"), ("BLOCKED", "AT_RISK"), ("FLAGGED", "BLOCKED"), ("AT_RISK", "FLAGGED"),
        ("HEALTHY", "AT_RISK"), ("UNSPECIFIED", "HEALTHY")]
    flagged = history[3]
    assert flagged.cause == "Hiya: Spam Likely" and list(flagged.sources) == [types.REPUTATION_SOURCE_HIYA]
    early = history[4]
    assert set(early.factors) == {spb.RISK_FACTOR_KIND_DAILY_VOLUME, spb.RISK_FACTOR_KIND_ANSWER_RATE}
    assert "answer rate 3.9% below 8%" in early.cause
    assert history[2].factors == [spb.RISK_FACTOR_KIND_BLOCKED_CALLS]


def without_duration(health):
    health.ClearField("status_duration")
    return health


def test_the_same_batch_sent_twice_changes_nothing(stack, clock):
    clock.set(at(4, 7))
    stack.create_numbers(NUMBER, phone(2))
    clock.set(at(4, 20))
    batch = stack.calls.day(NUMBER, at(4, 8), calls=170, answered=6, inbound=3)
    batch += stack.calls.day(phone(2), at(4, 8), calls=30, answered=10)
    first = stack.report(batch)
    assert (first.accepted, first.duplicates, first.rejected) == (203, 0, 0)
    before = [without_duration(stack.health(n)) for n in (NUMBER, phone(2))]
    activity = stack.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=NUMBER, days=2), metadata=A)
    history = stack.history(NUMBER)

    clock.set(at(4, 21))
    again = stack.report(batch)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 203, 0)
    # The same health, down to its update time: nothing was written (only the time in status has grown).
    assert [without_duration(stack.health(n)) for n in (NUMBER, phone(2))] == before
    assert stack.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=NUMBER, days=2),
                                         metadata=A) == activity
    assert stack.history(NUMBER) == history

    # The stream counts the same way, and an event repeated inside one batch counts once.
    call = stack.calls.outbound(NUMBER, at(4, 20.5), answered=True, talk=30)
    streamed = stack.scoring.StreamCallOutcomes(iter([
        spb.StreamCallOutcomesRequest(outcomes=batch[:50]),
        spb.StreamCallOutcomesRequest(outcomes=[call, call]),
    ]), metadata=A).summary
    assert (streamed.accepted, streamed.duplicates, streamed.rejected) == (1, 51, 0)
    day = stack.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=NUMBER, days=1),
                                        metadata=A).days[-1]
    assert (day.outbound_calls, day.answered_calls, day.inbound_calls) == (171, 7, 3)
