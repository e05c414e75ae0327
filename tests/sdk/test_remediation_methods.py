"""Every remediation method of the SDK against the real platform: cases opened by a flag, tasks, evidence,
notes, cancellation, alert subscriptions, policy and the case feed."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.type.v1 import types_pb2 as types

SF = [f"+1415867{i:04d}" for i in range(9000, 9010)]


def _flag(platform: Any, number: str, source: str = "HIYA") -> rem.Case:
    client = platform.client
    client.report_reputation_observations([{"phone_number": number, "source": source, "label": "SPAM",
                                            "raw_label": "Spam Likely", "observe_time": platform.clock.now()}])
    cases = platform.wait_until(lambda: client.list_cases(phone_number=number).to_list(), "a case to open")
    return cases[0]


def test_a_flag_opens_a_case_that_quarantines_the_number(platform: Any) -> None:
    client = platform.client
    campaign = platform.campaign_with_numbers(SF[:2])
    case = _flag(platform, SF[0])
    assert case.state == rem.CASE_STATE_OPEN and case.kind == rem.CASE_KIND_REMEDIATION
    platform.wait_until(lambda: client.get_number(SF[0]).state in (types.LIFECYCLE_STATE_QUARANTINED,
                                                                   types.LIFECYCLE_STATE_RESTING), "the quarantine")
    fetched = client.get_case(case.id)
    kinds = {t.kind for t in fetched.tasks}
    assert rem.TASK_KIND_DISPUTE in kinds and rem.TASK_KIND_REGISTRATION in kinds

    assert [c.id for c in client.list_cases(states="OPEN", campaign_id=campaign, page_size=1)] == [case.id]
    disputes = client.list_tasks(kinds=["DISPUTE"], page_size=1).to_list()
    assert disputes and all(t.kind == rem.TASK_KIND_DISPUTE for t in disputes)
    dispute = next(t for t in fetched.tasks if t.kind == rem.TASK_KIND_DISPUTE)
    assert dispute.source == types.REPUTATION_SOURCE_HIYA

    updated = client.update_task(case.id, dispute.id, status="IN_PROGRESS", owner="ops@acme.example",
                                 reference="HIYA-123", notes="filed the false-positive form")
    assert updated.task.status == rem.TASK_STATUS_IN_PROGRESS and updated.task.reference == "HIYA-123"
    assert updated.case.id == case.id

    noted = client.add_case_note(case.id, "called the carrier")
    assert noted.id == case.id
    events = client.case_events(case.id, page_size=2).to_list()
    types_seen = {e.event_type for e in events}
    assert "note.added" in types_seen and len(events) >= 3

    packet = client.evidence_packet(case.id, task_id=dispute.id)
    assert packet.packets[0].phone_number == SF[0] and packet.content_type == "application/json"
    assert json.loads(packet.content)
    as_csv = client.evidence_packet(case.id, format="CSV")
    assert as_csv.content_type == "text/csv" and as_csv.filename.endswith(".csv")

    cancelled = client.cancel_case(case.id, reason="false alarm", restore_number=True)
    assert cancelled.state == rem.CASE_STATE_CANCELLED
    # Restored: straight to ACTIVE from quarantine, or to WARMING once it had started resting.
    platform.wait_until(lambda: client.get_number(SF[0]).state in (types.LIFECYCLE_STATE_ACTIVE,
                                                                   types.LIFECYCLE_STATE_WARMING), "the restore")


def test_cases_opened_by_hand_join_an_open_one(platform: Any) -> None:
    client = platform.client
    platform.campaign_with_numbers(SF[2:4])
    opened = client.open_case(SF[2], reason="answer rate dropping")
    assert opened.created and opened.case.kind == rem.CASE_KIND_REMEDIATION
    again = client.open_case(SF[2], reason="complaints too")
    assert not again.created and again.case.id == opened.case.id
    assert len(again.case.triggers) == 2
    watch = client.open_case(SF[3], kind="WATCH", reason="keep an eye on it")
    assert watch.case.kind == rem.CASE_KIND_WATCH


def test_alert_subscriptions_and_deliveries(platform: Any) -> None:
    client = platform.client
    created = client.create_alert_subscription("WEBHOOK", "https://127.0.0.1:9/hook",
                                               kinds=["NUMBER_FLAGGED", "CASE_OPENED"])
    assert created.signing_secret and created.subscription.channel == rem.ALERT_CHANNEL_WEBHOOK
    second = client.create_alert_subscription("EMAIL", "ops@acme.example")
    assert {s.id for s in client.list_alert_subscriptions(page_size=1)} == {created.subscription.id,
                                                                            second.subscription.id}
    platform.campaign_with_numbers(SF[3:4])
    _flag(platform, SF[3])
    deliveries = platform.wait_until(
        lambda: client.list_alert_deliveries(subscription_id=created.subscription.id).to_list(), "an alert")
    assert deliveries[0].kind in (rem.ALERT_KIND_NUMBER_FLAGGED, rem.ALERT_KIND_CASE_OPENED)
    client.delete_alert_subscription(second.subscription.id)
    assert [s.id for s in client.list_alert_subscriptions()] == [created.subscription.id]


def test_remediation_policy(platform: Any) -> None:
    client = platform.client
    policy = client.get_remediation_policy()
    assert policy.rest_duration.seconds == 14 * 86400 and list(policy.warmup_daily_caps) == [20, 40, 60, 100]
    updated = client.update_remediation_policy({"rest_duration": dt.timedelta(days=21), "max_cycles": 2})
    assert updated.rest_duration.seconds == 21 * 86400 and updated.max_cycles == 2
    assert updated.watch_at_risk == policy.watch_at_risk


def test_watch_cases_streams_case_changes(platform: Any) -> None:
    client = platform.client
    platform.campaign_with_numbers(SF[4:5])
    opened = threading.Event()
    with client.watch_cases() as stream:
        def read() -> None:
            for change in stream:
                if change.case.phone_number == SF[4]:
                    opened.set()
                    return
        reader = threading.Thread(target=read)
        reader.start()
        _flag(platform, SF[4], source="NOMOROBO")
        assert opened.wait(20)
        reader.join(5)
