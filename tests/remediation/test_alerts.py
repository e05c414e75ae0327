"""Alerts: subscriptions with filters, signed webhooks retried with backoff, e-mail through SMTP, the delivery log,
overdue tasks, the pool guard and the weekly digest."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from remediation.support import Remediation, SmtpServer, WebhookReceiver, saw_health, saw_transition, wait_for

from nhm.remediation.v1 import remediation_pb2 as rpb
from nhm.type.v1 import types_pb2 as t
from nhm_platform.protoconv import to_timestamp
from nhm_remediation.alerting import verify
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY

P1, P2, P3 = "+14158670021", "+12127360022", "+13056740023"
HIYA = t.REPUTATION_SOURCE_HIYA
S = t.LifecycleState


@pytest.fixture
def receiver():
    server = WebhookReceiver(fail_first=True)
    yield server
    server.close()


def subscribe(api, target, *kinds, channel=rpb.ALERT_CHANNEL_WEBHOOK, campaigns=(), secret=""):
    return api.CreateAlertSubscription(rpb.CreateAlertSubscriptionRequest(
        subscription=rpb.AlertSubscription(channel=channel, target=target, kinds=list(kinds),
                                           campaign_ids=list(campaigns)), signing_secret=secret))


def deliveries(api, **filters):
    return list(api.ListAlertDeliveries(rpb.ListAlertDeliveriesRequest(**filters)).deliveries)


def failed_once(api, count):
    """Wait until ``count`` pending deliveries have their failed first attempt logged (and a retry time set)."""
    def check():
        found = [d for d in deliveries(api, states=[rpb.DELIVERY_STATE_PENDING]) if d.attempts == 1]
        return found if len(found) == count else None
    return wait_for(check, what=f"{count} failed first attempt(s) logged")


def fails(code, call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    assert info.value.code() is code, info.value.details()
    return info.value


def test_webhook_gets_one_signed_alert_each_for_flag_escalation_and_resolution(remediation, upstreams, clock,
                                                                              receiver):
    registry, scoring = upstreams.registry, upstreams.scoring
    registry.add_number(TENANT_A, P1, campaigns=("cmp-east",))
    handle = remediation()
    with handle.channel() as channel:
        api = Remediation(channel, TENANT_A_KEY)
        created = subscribe(api, receiver.url, rpb.ALERT_KIND_NUMBER_FLAGGED, rpb.ALERT_KIND_CASE_ESCALATED,
                            rpb.ALERT_KIND_CASE_RESOLVED)
        secret = created.signing_secret
        assert secret.startswith("whsec_") and created.subscription.id
        listed = api.ListAlertSubscriptions(rpb.ListAlertSubscriptionsRequest()).subscriptions
        assert [s.id for s in listed] == [created.subscription.id] and listed[0].target == receiver.url

        scoring.set_health(TENANT_A, P1, {HIYA: "spam"})
        case = api.wait_case(P1, lambda c: c.stage == rpb.CASE_STAGE_RESTING, "resting")
        # The first attempt failed (503) and waits for its backoff on the service's clock.
        pending = failed_once(api, 1)
        assert pending[0].state == rpb.DELIVERY_STATE_PENDING and pending[0].last_error.startswith("HTTP 503")
        assert pending[0].next_attempt_time.ToDatetime().replace(tzinfo=clock.now().tzinfo) > clock.now()
        assert receiver.accepted == []
        clock.advance(timedelta(seconds=31))
        wait_for(lambda: len(receiver.accepted) == 1, what="flag delivered on the retry")

        clock.advance(timedelta(days=14, minutes=1))
        saw_transition(api, case.id, "WARMING")
        scoring.set_health(TENANT_A, P1, {})
        saw_health(api, case.id, "Healthy")
        scoring.set_health(TENANT_A, P1, {HIYA: "spam"})  # flagged again during warm-up
        api.wait_case(P1, lambda c: c.cycle == 2 and c.stage == rpb.CASE_STAGE_RESTING, "escalated")
        failed_once(api, 2)
        clock.advance(timedelta(seconds=31))
        wait_for(lambda: len(receiver.accepted) == 3, what="flag and escalation delivered")
        scoring.set_health(TENANT_A, P1, {})  # the label clears during the longer rest
        saw_health(api, case.id, "Healthy", times=2)

        clock.advance(timedelta(days=28, minutes=1))
        saw_transition(api, case.id, "WARMING", times=2)
        clock.advance(timedelta(days=12, minutes=1))
        api.wait_case(P1, lambda c: c.state == rpb.CASE_STATE_RESOLVED, "resolved")
        failed_once(api, 1)
        clock.advance(timedelta(seconds=31))
        wait_for(lambda: len(receiver.accepted) == 4, what="resolution delivered")
        log = wait_for(lambda: len(deliveries(api, states=[rpb.DELIVERY_STATE_DELIVERED])) == 4
                       and deliveries(api, states=[rpb.DELIVERY_STATE_DELIVERED]), what="delivery log")

    bodies = receiver.bodies()
    # The flag, the flag again during warm-up, the escalation it caused, the resolution: each exactly once.
    assert [b["kind"] for b in bodies] == ["NUMBER_FLAGGED", "NUMBER_FLAGGED", "CASE_ESCALATED", "CASE_RESOLVED"]
    assert all(b["phone_number"] == P1 and b["tenant_id"] == TENANT_A for b in bodies)
    assert bodies[2]["case"]["cycle"] == 2 and bodies[3]["case"]["state"] == "RESOLVED"
    assert bodies[0]["campaign_ids"] == ["cmp-east"]
    # Every attempt of an alert carries the same idempotency key and a valid signature of its exact body.
    by_key: dict[str, list[bytes]] = {}
    for headers, body in receiver.attempts:
        assert verify(secret, body, headers["X-Nhm-Signature"])
        assert headers["X-Nhm-Alert-Id"] == headers["Idempotency-Key"] == json.loads(body)["alert_id"]
        by_key.setdefault(headers["Idempotency-Key"], []).append(body)
    assert len(by_key) == 4 and all(len(set(bodies)) == 1 and len(bodies) == 2 for bodies in by_key.values())
    assert not verify("whsec_wrong", receiver.attempts[0][1], receiver.attempts[0][0]["X-Nhm-Signature"])
    assert all(d.attempts == 2 and d.HasField("deliver_time") for d in log)
    assert sorted(d.kind for d in log) == [rpb.ALERT_KIND_NUMBER_FLAGGED, rpb.ALERT_KIND_NUMBER_FLAGGED,
                                           rpb.ALERT_KIND_CASE_ESCALATED, rpb.ALERT_KIND_CASE_RESOLVED]


def test_email_alerts_go_through_the_configured_smtp_server(remediation, upstreams):
    smtp = SmtpServer()
    try:
        upstreams.registry.add_number(TENANT_A, P1)
        handle = remediation(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="alerts@nhm.example")
        with handle.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            created = subscribe(api, "ops@acme.example", rpb.ALERT_KIND_CASE_OPENED, channel=rpb.ALERT_CHANNEL_EMAIL)
            assert created.signing_secret == ""
            upstreams.scoring.set_health(TENANT_A, P1, {HIYA: "scam"})
            wait_for(lambda: smtp.messages, what="e-mail")
            sender, recipients, data = smtp.messages[0]
            assert "alerts@nhm.example" in sender and recipients == ["ops@acme.example"]
            assert "Subject: [nhm] Case Opened:" in data and P1 in data and "X-Nhm-Alert-Id: alr_" in data
            [delivery] = wait_for(lambda: deliveries(api, states=[rpb.DELIVERY_STATE_DELIVERED]), what="logged")
            assert delivery.attempts == 1 and delivery.kind == rpb.ALERT_KIND_CASE_OPENED
    finally:
        smtp.close()


def test_subscriptions_filter_by_kind_and_campaign(remediation, upstreams):
    receiver = WebhookReceiver(fail_first=False)
    try:
        registry, scoring = upstreams.registry, upstreams.scoring
        registry.add_number(TENANT_A, P1, campaigns=("cmp-east",))
        registry.add_number(TENANT_A, P2, campaigns=("cmp-west",))
        handle = remediation()
        with handle.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            east = subscribe(api, receiver.url + "?east", rpb.ALERT_KIND_CASE_OPENED, campaigns=["cmp-east"])
            everything = subscribe(api, receiver.url + "?all")
            scoring.set_health(TENANT_A, P1, {HIYA: "spam"})
            scoring.set_health(TENANT_A, P2, {HIYA: "minor"})
            api.wait_case(P2, lambda c: c.kind == rpb.CASE_KIND_WATCH, "watch case")
            api.wait_case(P1, lambda c: c.stage == rpb.CASE_STAGE_RESTING, "resting")
            wait_for(lambda: len(deliveries(api, subscription_id=everything.subscription.id,
                                            states=[rpb.DELIVERY_STATE_DELIVERED])) == 5, what="all kinds")
            east_log = deliveries(api, subscription_id=east.subscription.id)
            assert [d.kind for d in east_log] == [rpb.ALERT_KIND_CASE_OPENED]
            assert P1 in east_log[0].summary
            kinds = sorted(d.kind for d in deliveries(api, subscription_id=everything.subscription.id))
            # P1 is the only number of cmp-east, so quarantining it empties the campaign's pool.
            assert kinds == sorted([rpb.ALERT_KIND_NUMBER_FLAGGED, rpb.ALERT_KIND_CASE_OPENED,
                                    rpb.ALERT_KIND_CAMPAIGN_SHORT_OF_NUMBERS, rpb.ALERT_KIND_NUMBER_AT_RISK,
                                    rpb.ALERT_KIND_CASE_OPENED])
            # Another tenant sees none of it and cannot delete it.
            globex = Remediation(channel, TENANT_B_KEY)
            assert deliveries(globex) == []
            fails(grpc.StatusCode.NOT_FOUND, globex.DeleteAlertSubscription,
                  rpb.DeleteAlertSubscriptionRequest(subscription_id=east.subscription.id))
            api.DeleteAlertSubscription(rpb.DeleteAlertSubscriptionRequest(subscription_id=east.subscription.id))
            fails(grpc.StatusCode.NOT_FOUND, api.DeleteAlertSubscription,
                  rpb.DeleteAlertSubscriptionRequest(subscription_id=east.subscription.id))
            listed = api.ListAlertSubscriptions(rpb.ListAlertSubscriptionsRequest()).subscriptions
            assert [s.id for s in listed] == [everything.subscription.id]
    finally:
        receiver.close()


def test_overdue_tasks_and_a_short_pool_raise_alerts_once(remediation, upstreams, clock):
    receiver = WebhookReceiver(fail_first=False)
    try:
        registry, scoring = upstreams.registry, upstreams.scoring
        registry.add_number(TENANT_A, P1, campaigns=("cmp-east",))
        registry.add_number(TENANT_A, P2, campaigns=("cmp-east",), state=S.LIFECYCLE_STATE_RESTING)
        registry.add_number(TENANT_A, P3, campaigns=("cmp-east",))
        handle = remediation()
        with handle.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            subscribe(api, receiver.url, rpb.ALERT_KIND_TASK_OVERDUE, rpb.ALERT_KIND_CAMPAIGN_SHORT_OF_NUMBERS)
            scoring.set_health(TENANT_A, P1, {HIYA: "spam"})
            case = api.wait_case(P1, lambda c: c.stage == rpb.CASE_STAGE_RESTING, "resting")
            [pool] = case.pool_alerts
            assert pool.campaign_id == "cmp-east" and pool.resting_share == pytest.approx(2 / 3, abs=1e-3)
            assert pool.threshold == pytest.approx(0.3)
            guard = [e for e in api.events(case.id) if e.event_type == "pool.guard"]
            assert len(guard) == 1 and "quarantined anyway" in guard[0].detail
            wait_for(lambda: [b["kind"] for b in receiver.bodies()] == ["CAMPAIGN_SHORT_OF_NUMBERS"],
                     what="pool alert")
            assert receiver.bodies()[0]["details"]["campaign_id"] == "cmp-east"

            clock.advance(timedelta(days=8))
            wait_for(lambda: len(receiver.bodies()) == 3, what="overdue alerts")
            overdue = [b for b in receiver.bodies() if b["kind"] == "TASK_OVERDUE"]
            assert sorted(b["details"]["task_kind"] for b in overdue) == ["DISPUTE", "REGISTRATION"]
            clock.advance(timedelta(hours=1))
            wait_for(lambda: any(e.event_type == "task.overdue" for e in api.events(case.id)), what="audited")
            assert len(receiver.bodies()) == 3  # once per task, not once per pass
            # A new deadline gets its own overdue alert once it passes.
            dispute = next(d for d in api.GetCase(rpb.GetCaseRequest(case_id=case.id)).case.tasks
                           if d.kind == rpb.TASK_KIND_DISPUTE)
            api.UpdateTask(rpb.UpdateTaskRequest(
                task=rpb.Task(id=dispute.id, case_id=case.id, due_time=to_timestamp(clock.now() + timedelta(days=2))),
                update_mask=field_mask_pb2.FieldMask(paths=["due_time"])))
            clock.advance(timedelta(days=3))
            wait_for(lambda: len(receiver.bodies()) == 4, what="second overdue alert")
            assert receiver.bodies()[-1]["details"]["task_id"] == dispute.id
    finally:
        receiver.close()


def test_weekly_digest_carries_the_scoring_report_and_the_week_of_remediation(remediation, upstreams, clock):
    receiver = WebhookReceiver(fail_first=False)
    try:
        upstreams.registry.add_number(TENANT_A, P1, campaigns=("cmp-solo",))
        handle = remediation()
        with handle.channel() as channel:
            api = Remediation(channel, TENANT_A_KEY)
            subscribe(api, receiver.url, rpb.ALERT_KIND_WEEKLY_DIGEST)
            upstreams.scoring.set_health(TENANT_A, P1, {HIYA: "spam"})
            api.wait_case(P1, lambda c: c.stage == rpb.CASE_STAGE_RESTING, "resting")
            clock.advance(timedelta(days=7, minutes=1))
            [digest] = wait_for(receiver.bodies, what="digest")
            assert digest["kind"] == "WEEKLY_DIGEST"
            assert digest["details"]["report"]["outboundCalls"] == "1234"
            assert digest["summary"].endswith("8 healthy, 1 at risk, 1 flagged, 0 blocked")
            week = digest["details"]["remediation"]
            assert week["open_cases"] == {"RESTING": 1} and week["opened"] == 1 and week["closed"] == {}
            # The pool guard's alert is in the weekly digest too.
            assert [a["campaign_id"] for a in week["pool_alerts"]] == ["cmp-solo"]
            assert upstreams.scoring.metadata[-1]["x-nhm-tenant-id"] == TENANT_A
            clock.advance(timedelta(days=1))
            wait_for(lambda: deliveries(api, states=[rpb.DELIVERY_STATE_DELIVERED]), what="logged")
            assert len(receiver.bodies()) == 1  # next one a week later
    finally:
        receiver.close()


def test_a_delivery_that_keeps_failing_is_given_up_and_logged(remediation, upstreams, clock):
    upstreams.registry.add_number(TENANT_A, P1)
    handle = remediation(delivery_max_attempts=3)
    with handle.channel() as channel:
        api = Remediation(channel, TENANT_A_KEY)
        subscribe(api, "http://127.0.0.1:9/unreachable", rpb.ALERT_KIND_CASE_OPENED)
        upstreams.scoring.set_health(TENANT_A, P1, {HIYA: "spam"})
        wait_for(lambda: [d for d in deliveries(api) if d.attempts == 1], what="first attempt")
        clock.advance(timedelta(seconds=31))
        wait_for(lambda: [d for d in deliveries(api) if d.attempts == 2], what="second attempt")
        [second] = deliveries(api)
        assert second.next_attempt_time.ToDatetime().replace(tzinfo=clock.now().tzinfo) == pytest.approx(
            clock.now() + timedelta(seconds=60), abs=timedelta(seconds=2))  # backoff doubles
        clock.advance(timedelta(seconds=61))
        [failed] = wait_for(lambda: deliveries(api, states=[rpb.DELIVERY_STATE_FAILED]), what="given up")
        assert failed.attempts == 3 and "could not reach" in failed.last_error
        assert not failed.HasField("next_attempt_time")


def test_subscription_validation(remediation):
    handle = remediation(allow_http_webhooks=False)
    with handle.channel() as channel:
        api = Remediation(channel, TENANT_A_KEY)
        for target, channel_kind in [("http://hooks.example/x", rpb.ALERT_CHANNEL_WEBHOOK),
                                     ("ftp://hooks.example/x", rpb.ALERT_CHANNEL_WEBHOOK),
                                     ("https://user:pw@hooks.example/x", rpb.ALERT_CHANNEL_WEBHOOK),
                                     ("not-an-address", rpb.ALERT_CHANNEL_EMAIL), ("", rpb.ALERT_CHANNEL_EMAIL)]:
            fails(grpc.StatusCode.INVALID_ARGUMENT, subscribe, api, target, channel=channel_kind)
        fails(grpc.StatusCode.INVALID_ARGUMENT, subscribe, api, "https://hooks.example/x", channel=0)
        fails(grpc.StatusCode.INVALID_ARGUMENT, subscribe, api, "https://hooks.example/x", 0)
        fails(grpc.StatusCode.INVALID_ARGUMENT, subscribe, api, "ops@acme.example", channel=rpb.ALERT_CHANNEL_EMAIL,
              secret="a-secret-for-mail-01")
        fails(grpc.StatusCode.INVALID_ARGUMENT, subscribe, api, "https://hooks.example/x", secret="short")
        chosen = subscribe(api, "https://hooks.example/x", secret="my-own-secret-0123456789")
        assert chosen.signing_secret == "my-own-secret-0123456789"
        assert list(chosen.subscription.kinds) == []


def field_violations(exc: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)
    found: dict[str, str] = {}
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def test_a_subscription_to_another_tenants_campaign_gets_the_answer_of_an_unknown_one(remediation, upstreams):
    """INVALID_ARGUMENT naming each such campaign id (as the registry answers a number's unknown campaign), the
    same words for another tenant's campaign as for one that does not exist, and nothing stored."""
    upstreams.registry.add_number(TENANT_A, P1, campaigns=("cmp-east",))
    upstreams.registry.add_number(TENANT_B, P2, campaigns=("cmp-globex",))
    handle = remediation()
    with handle.channel() as channel:
        api = Remediation(channel, TENANT_A_KEY)
        error = fails(grpc.StatusCode.INVALID_ARGUMENT, subscribe, api, "https://a.example/hook",
                      campaigns=["cmp-east", "cmp-globex", "cmp-nowhere"])
        found = field_violations(error)
        assert set(found) == {"subscription.campaign_ids[1]", "subscription.campaign_ids[2]"}, found
        assert (found["subscription.campaign_ids[1]"].replace("cmp-globex", "ID")
                == found["subscription.campaign_ids[2]"].replace("cmp-nowhere", "ID"))
        assert "not found" in found["subscription.campaign_ids[1]"]
        assert not api.ListAlertSubscriptions(rpb.ListAlertSubscriptionsRequest()).subscriptions
        created = subscribe(api, "https://a.example/hook", campaigns=["cmp-east"]).subscription
        assert list(created.campaign_ids) == ["cmp-east"]
    with handle.channel() as channel:  # B's own campaign is fine for B
        b = Remediation(channel, TENANT_B_KEY)
        assert list(subscribe(b, "https://b.example/hook", campaigns=["cmp-globex"]).subscription.campaign_ids) == [
            "cmp-globex"]
