"""State lives in the database: restarts mid-case lose nothing and repeat no step; replicas sharing one
database split the work without doing a step twice; a registry that is down only delays a step."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import grpc
from remediation.support import Remediation, WebhookReceiver, saw_health, saw_transition, wait_for

from nhm.remediation.v1 import remediation_pb2 as rpb
from nhm.type.v1 import types_pb2 as t
from nhm_remediation.app import SPEC
from nhm_testing.keys import TENANT_A, TENANT_A_KEY

HIYA = t.REPUTATION_SOURCE_HIYA


def stop(handle):
    handle.running.stop(0)


def test_restart_mid_case_loses_nothing_and_repeats_no_step(remediation, upstreams, clock, database_url):
    registry, scoring = upstreams.registry, upstreams.scoring
    phone = "+14158670031"
    registry.add_number(TENANT_A, phone, campaigns=("cmp-east",))
    receiver = WebhookReceiver(fail_first=False)
    url = database_url(SPEC)
    try:
        first = remediation(url=url)
        with first.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            api.CreateAlertSubscription(rpb.CreateAlertSubscriptionRequest(subscription=rpb.AlertSubscription(
                channel=rpb.ALERT_CHANNEL_WEBHOOK, target=receiver.url,
                kinds=[rpb.ALERT_KIND_CASE_OPENED, rpb.ALERT_KIND_CASE_RESOLVED])))
            registry.fail_next = [grpc.StatusCode.UNAVAILABLE]  # the registry is down for the quarantine
            scoring.set_health(TENANT_A, phone, {HIYA: "spam"})
            case = api.wait_case(phone, lambda c: c.stage == rpb.CASE_STAGE_QUARANTINE, "case opened")
            wait_for(lambda: not registry.fail_next and registry.invocations, what="quarantine attempted")
            wait_for(lambda: receiver.accepted, what="opening alert delivered")
        stop(first)  # the quarantine is queued for a retry; this process goes away

        second = remediation(url=url, sync=False)
        with second.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            clock.advance(timedelta(seconds=31))  # the retry is due
            saw_transition(api, case.id, "RESTING")
            assert registry.transitions(phone) == ["QUARANTINED", "RESTING"]
        stop(second)

        clock.advance(timedelta(days=14, minutes=1))  # the rest ends while no process runs
        third = remediation(url=url, sync=False)
        with third.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            saw_transition(api, case.id, "WARMING")
            scoring.set_health(TENANT_A, phone, {})
            saw_health(api, case.id, "Healthy")
        stop(third)

        clock.advance(timedelta(days=12, minutes=1))
        fourth = remediation(url=url, sync=False)
        with fourth.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            done = api.wait_case(phone, lambda c: c.state == rpb.CASE_STATE_RESOLVED, "resolved")
            wait_for(lambda: len(receiver.accepted) == 2, what="resolution alert")
            events = Counter(e.event_type for e in api.events(case.id))
    finally:
        receiver.close()

    assert done.id == case.id and len(done.triggers) == 1
    assert registry.transitions(phone) == ["QUARANTINED", "RESTING", "WARMING", "ACTIVE"]
    # One failed attempt of the quarantine (registry down), then each step exactly once.
    request_ids = [r for p, r in registry.invocations if p == phone]
    assert len(request_ids) == 5 and request_ids[0] == request_ids[1] and len(set(request_ids)) == 4
    assert events["case.opened"] == 1 and events["case.resolved"] == 1 and events["case.trigger_joined"] == 0
    assert [b["kind"] for b in receiver.bodies()] == ["CASE_OPENED", "CASE_RESOLVED"]


def test_two_replicas_share_one_database_and_do_each_step_once(remediation, upstreams, clock, database_url):
    registry, scoring = upstreams.registry, upstreams.scoring
    phones = [f"+1415867004{i}" for i in range(6)]
    for phone in phones:
        registry.add_number(TENANT_A, phone, campaigns=("cmp-east",))
    receiver = WebhookReceiver(fail_first=False)
    url = database_url(SPEC)
    try:
        one = remediation(url=url)
        two = remediation(url=url)
        with one.channel() as channel_one, two.channel() as channel_two:
            api_one = Remediation(channel_one, TENANT_A_KEY)
            api_two = Remediation(channel_two, TENANT_A_KEY)
            api_one.CreateAlertSubscription(rpb.CreateAlertSubscriptionRequest(subscription=rpb.AlertSubscription(
                channel=rpb.ALERT_CHANNEL_WEBHOOK, target=receiver.url,
                kinds=[rpb.ALERT_KIND_CASE_OPENED, rpb.ALERT_KIND_NUMBER_FLAGGED, rpb.ALERT_KIND_CASE_RESOLVED])))
            for phone in phones:
                scoring.set_health(TENANT_A, phone, {HIYA: "spam"})
            for phone in phones:
                case = api_two.wait_case(phone, lambda c: c.stage == rpb.CASE_STAGE_RESTING, "resting")
                saw_transition(api_one, case.id, "RESTING")
            # Delivered before the clock jumps: a delivery's lease is on the service's clock, so a jump past it
            # while one replica is sending lets the other send again (at least once, as documented; this test
            # holds the replicas to once while nothing is in flight).
            wait_for(lambda: len(receiver.accepted) == 2 * len(phones), what="opening alerts delivered")
            clock.advance(timedelta(days=14, minutes=1))
            for phone in phones:
                saw_transition(api_two, api_one.case_for(phone).id, "WARMING")
                scoring.set_health(TENANT_A, phone, {})
            for phone in phones:
                saw_health(api_one, api_one.case_for(phone).id, "Healthy")
            clock.advance(timedelta(days=12, minutes=1))
            for phone in phones:
                api_two.wait_case(phone, lambda c: c.state == rpb.CASE_STATE_RESOLVED, "resolved")
            wait_for(lambda: len(receiver.accepted) == 3 * len(phones), what="alerts delivered")
            cases = api_one.cases()
            events = {c.id: Counter(e.event_type for e in api_one.events(c.id)) for c in cases}
    finally:
        receiver.close()

    assert len(cases) == len(phones) and all(len(c.triggers) == 1 for c in cases)
    assert all(e["case.opened"] == 1 and e["health.changed"] == 1 and e["case.resolved"] == 1
               for e in events.values()), events
    for phone in phones:
        assert registry.transitions(phone) == ["QUARANTINED", "RESTING", "WARMING", "ACTIVE"]
    # No request reached the registry twice, not even as an idempotent replay.
    assert len(registry.invocations) == len(set(registry.invocations)) == 4 * len(phones)
    ids = [headers["Idempotency-Key"] for headers, _ in receiver.attempts]
    assert len(ids) == len(set(ids)) == 3 * len(phones)
