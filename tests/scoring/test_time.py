"""Time-driven health: labels lose weight and expire, windows slide; the periodic pass applies it unprompted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoring.stack import factor, phone, start_stack, status, triggered

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.type.v1 import types_pb2 as types

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_an_unconfirmed_label_loses_weight_then_expires(stack, clock):
    stack.create_numbers(phone(1))
    stack.observe(phone(1), types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM, raw_label="Spam Likely")
    clock.advance(timedelta(days=6))
    stack.rescore_now()
    assert stack.health(phone(1)).sources[0].weight == 1.0
    # Fresh for 7 days, then linearly to nothing at 30 days: half weight at 18.5 days.
    clock.set(NOW + timedelta(days=18, hours=12))
    stack.rescore_now()
    health = stack.health(phone(1))
    assert health.sources[0].weight == 0.5
    assert status(health) == "FLAGGED"  # a fading label still counts until it expires
    assert health.status_duration.ToTimedelta() == timedelta(days=18, hours=12)
    clock.set(NOW + timedelta(days=30))
    stack.rescore_now()
    health = stack.health(phone(1))
    assert status(health) == "HEALTHY" and not health.sources
    assert health.carrier_status["CARRIER_ATT"] == types.HEALTH_STATUS_HEALTHY
    assert stack.history(phone(1))[0].cause.startswith("no spam labels")
    # Nothing left that time can change: the pass leaves the number alone now.
    assert stack.rescore_now().rescored == 0


def test_the_periodic_pass_runs_on_its_own(start_service, clock):
    stack = start_stack(start_service, clock, rescore_interval=0.05)
    stack.create_numbers(phone(1))
    stack.complain(phone(1), 3)
    assert status(stack.health(phone(1))) == "AT_RISK"
    clock.advance(timedelta(days=31))
    stack.wait_for(lambda: status(stack.health(phone(1))) == "HEALTHY", "the periodic pass to rescore")
    stack.close()


def test_spikes_repeat_dialling_and_refusals_are_measured(stack, clock):
    stack.create_numbers(phone(1), phone(2))
    clock.set(NOW.replace(hour=12))
    start = NOW.replace(hour=10)
    calls = stack.calls
    # phone(1): 60 calls within one hour, 5 of them to the same prospect, 4 refused with 603/607.
    batch = [calls.outbound(phone(1), start + timedelta(seconds=50 * i), answered=i % 3 == 0, talk=45,
                            to="+13056740042" if i < 5 else None) for i in range(60)]
    batch += [calls.outbound(phone(1), start + timedelta(minutes=61 + i), sip=603 if i % 2 else 607,
                             disposition=spb.CALL_DISPOSITION_REJECTED) for i in range(4)]
    batch += [calls.inbound(phone(1), start + timedelta(minutes=70 + i)) for i in range(2)]
    stack.report(batch)
    health = stack.health(phone(1))
    assert triggered(health) == {"HOURLY_VOLUME", "REPEAT_DIALING", "BLOCKED_CALLS"}
    assert factor(health, spb.RISK_FACTOR_KIND_HOURLY_VOLUME).value == 60
    assert factor(health, spb.RISK_FACTOR_KIND_REPEAT_DIALING).value == 5
    blocked = factor(health, spb.RISK_FACTOR_KIND_BLOCKED_CALLS)
    assert blocked.value == 4 / 64 and blocked.threshold == 0.05
    assert status(health) == "AT_RISK"  # 20 + 25 + 50 points: a risk score of 95, no label yet

    # phone(2): 608s spread out — three in one window never make a burst.
    for day in range(3):
        clock.set(NOW + timedelta(days=2 * day, hours=1))
        stack.report([calls.outbound(phone(2), clock.now() - timedelta(minutes=m), sip=608,
                                     disposition=spb.CALL_DISPOSITION_BLOCKED) for m in range(2)])
        assert status(stack.health(phone(2))) != "BLOCKED"
