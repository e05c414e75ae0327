"""The audit trail through the SDK against the real platform (both backends): each kind of change leaves exactly
one event naming the caller and what changed; refused changes and retries leave none; another tenant sees none;
filters and pages; the service's own changes are told apart from a person's; no secret is ever recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Any

import pytest
from google.protobuf import json_format
from sdk.conftest import tenant_client

from nhm.audit.v1 import audit_pb2 as audit
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm_sdk import (
    AbortedError,
    AsyncClient,
    Client,
    ClientConfig,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)

PHONES = [f"+1415867{i:04d}" for i in range(9100, 9110)]
TENANT, SERVICE, SYSTEM, ADMIN = (audit.ACTOR_ROLE_TENANT, audit.ACTOR_ROLE_SERVICE, audit.ACTOR_ROLE_SYSTEM,
                                  audit.ACTOR_ROLE_ADMIN)


def events(client: Client, service: str, **filters: Any) -> list[audit.AuditEvent]:
    return client.list_audit_events(service, oldest_first=True, **filters).to_list()


def changes(event: audit.AuditEvent) -> dict[str, tuple[str, str]]:
    return {c.field: (c.old_value, c.new_value) for c in event.changes}


def own_key_id(client: Client) -> str:
    (key,) = [k for k in client.list_api_keys() if k.name == "tests"]
    return key.id


def test_each_registry_change_leaves_one_event_with_the_caller_and_what_changed(platform: Any) -> None:
    c = platform.client
    setup = events(c, "registry")
    assert [(e.action, e.resource_type, e.actor.role) for e in setup] == [("created", "tenant", ADMIN),
                                                                          ("created", "api_key", ADMIN)]
    campaign = c.create_campaign("Audit", policy={"daily_cap_per_number": 80}, request_id="req-campaign-1")
    number = c.create_number(PHONES[0], display_name="Sales", campaign_ids=[campaign.id])
    c.update_number(PHONES[0], display_name="Sales West", labels={"team": "west"})
    c.transition_number(PHONES[0], "RESTING", reason="cooling down",
                        rest_until=platform.clock.now() + dt.timedelta(days=2))
    c.update_campaign(campaign.id, policy={"daily_cap_per_number": 60})
    c.create_number(PHONES[1])
    c.assign_numbers(campaign.id, [PHONES[1]])
    c.unassign_numbers(campaign.id, [PHONES[1]])
    c.retire_number(PHONES[1], reason="no longer needed")
    key = c.create_api_key("ops", role="READ_ONLY")
    c.revoke_api_key(key.api_key.id)
    c.update_tenant(display_name="Renamed")
    c.delete_campaign(campaign.id)

    found = events(c, "registry")[len(setup):]
    assert [(e.action, e.resource_name) for e in found] == [
        ("created", f"campaigns/{campaign.id}"), ("created", f"numbers/{PHONES[0]}"),
        ("updated", f"numbers/{PHONES[0]}"), ("transitioned", f"numbers/{PHONES[0]}"),
        ("updated", f"campaigns/{campaign.id}"), ("created", f"numbers/{PHONES[1]}"),
        ("numbers_assigned", f"campaigns/{campaign.id}"), ("numbers_unassigned", f"campaigns/{campaign.id}"),
        ("transitioned", f"numbers/{PHONES[1]}"), ("created", f"api_keys/{key.api_key.id}"),
        ("revoked", f"api_keys/{key.api_key.id}"), ("updated", f"tenants/{platform.tenant}"),
        ("deleted", f"campaigns/{campaign.id}")]
    key_id = own_key_id(c)
    assert {(e.actor.name, e.actor.role, e.actor.api_key_id, e.tenant_id, e.service) for e in found} == {
        ("tenant:tests", TENANT, key_id, platform.tenant, "registry")}
    assert all(e.request_id for e in found) and found[0].request_id == "req-campaign-1"
    assert {e.event_time.ToDatetime(tzinfo=dt.UTC) for e in found} == {platform.clock.now()}

    created, updated, transitioned = found[1], found[2], found[3]
    assert changes(created)["display_name"] == ("", '"Sales"')
    assert changes(created)["campaign_ids"] == ("", f'["{campaign.id}"]')
    assert changes(created)["state"] == ("", '"LIFECYCLE_STATE_ACTIVE"') and number.display_name == "Sales"
    assert changes(updated) == {"display_name": ('"Sales"', '"Sales West"'), "labels.team": ("", '"west"')}
    assert transitioned.reason == "cooling down"
    assert changes(transitioned)["state"] == ('"LIFECYCLE_STATE_ACTIVE"', '"LIFECYCLE_STATE_RESTING"')
    assert "rest_until" in changes(transitioned)
    assert changes(found[4]) == {"policy.daily_cap_per_number": ("80", "60")}
    assert changes(found[6]) == {"phone_numbers": ("", f'["{PHONES[1]}"]')}
    assert changes(found[7]) == {"phone_numbers": (f'["{PHONES[1]}"]', "")}
    assert changes(found[8])["state"][1] == '"LIFECYCLE_STATE_RETIRED"' and found[8].reason == "no longer needed"
    assert changes(found[9]) == {"name": ("", '"ops"'), "role": ("", '"API_KEY_ROLE_READ_ONLY"')}
    assert set(changes(found[10])) == {"revoke_time"}
    assert changes(found[11]) == {"display_name": ('"Test tenant"', '"Renamed"')}
    assert changes(found[12])["name"] == ('"Audit"', "")


def test_refused_changes_leave_no_event_and_a_retry_leaves_one(platform: Any, make_client: Any) -> None:
    c = platform.client
    campaign = c.create_campaign("Refusals")
    before = len(events(c, "registry"))
    with pytest.raises(InvalidArgumentError):
        c.import_numbers([PHONES[2], "+1415"])  # all or nothing: the good row is not created either
    with pytest.raises(AbortedError):
        c.update_campaign(campaign.id, name="Renamed", etag="stale")
    with pytest.raises(NotFoundError):
        c.update_number("+14155550100", display_name="nobody")
    read_only = make_client(api_key=c.create_api_key("viewer", role="READ_ONLY").secret, **platform.targets())
    before += 1  # the key's creation
    with pytest.raises(PermissionDeniedError):
        read_only.create_campaign("Not allowed")
    assert len(events(c, "registry")) == before

    first = c.create_number(PHONES[2], request_id="req-number-2")
    again = c.create_number(PHONES[2], request_id="req-number-2")  # a retry: the first answer, nothing new
    assert again == first
    created = events(c, "registry", resource_name=f"numbers/{PHONES[2]}")
    assert [(e.action, e.request_id) for e in created] == [("created", "req-number-2")]
    assert len(events(c, "registry")) == before + 1

    c.update_scoring_policy({"daily_volume_threshold": 120}, request_id="req-policy-1")
    c.update_scoring_policy({"daily_volume_threshold": 120}, request_id="req-policy-1")
    with pytest.raises(InvalidArgumentError):
        c.update_scoring_policy({"answer_rate_threshold": 7.0})
    (policy_event,) = events(c, "scoring")
    assert (policy_event.action, policy_event.resource_name, policy_event.request_id) == (
        "updated", "scoring_policy", "req-policy-1")
    assert changes(policy_event) == {"daily_volume_threshold": ("150", "120")}


def test_another_tenant_sees_none_of_the_events_and_an_admin_names_the_tenant(platform: Any) -> None:
    c = platform.client
    campaign = c.create_campaign("Private")
    c.create_number(PHONES[3], campaign_ids=[campaign.id])
    c.update_scoring_policy({"complaint_threshold": 4})
    other_tenant, other = tenant_client(platform, lambda **f: Client(ClientConfig(**f)))
    try:
        for service in ("registry", "scoring", "remediation"):
            seen = events(other, service)
            assert all(e.tenant_id == other_tenant for e in seen)
            assert not events(other, service, resource_name=f"campaigns/{campaign.id}")
            assert not [e for e in seen if campaign.id in str(e) or PHONES[3] in str(e)]
        assert not list(other.audit_trail(actor="tenant:tests", resource_types="number"))
    finally:
        other.close()
    assert platform.admin is not None
    as_admin = events(platform.admin, "registry", metadata=[("x-nhm-tenant-id", platform.tenant)],
                      resource_name=f"campaigns/{campaign.id}")
    assert [e.action for e in as_admin] == ["created"]


def test_filters_pages_and_order(platform: Any) -> None:
    c = platform.client
    campaign = c.create_campaign("Filters")
    for phone in PHONES[4:8]:
        c.create_number(phone, campaign_ids=[campaign.id])
    platform.clock.advance(dt.timedelta(minutes=5))
    later = platform.clock.now()
    c.update_number(PHONES[4], display_name="Later")
    c.transition_number(PHONES[5], "QUARANTINED", reason="checking")

    every = events(c, "registry")
    newest = c.list_audit_events("registry").to_list()
    assert newest == every[::-1]
    paged = c.list_audit_events("registry", page_size=2)
    pages = list(paged.pages())
    assert [e for page in pages for e in page.items] == newest and len(pages) == (len(newest) + 1) // 2
    resumed = c.list_audit_events("registry", page_size=2, page_token=pages[1].next_page_token).to_list()
    assert resumed == newest[4:]

    assert [e.action for e in events(c, "registry", resource_name=f"numbers/{PHONES[4]}")] == ["created", "updated"]
    assert {e.resource_type for e in events(c, "registry", resource_types=["number"])} == {"number"}
    assert len(events(c, "registry", resource_types="number", actions="created")) == 4
    assert [e.action for e in events(c, "registry", start_time=later)] == ["updated", "transitioned"]
    assert all(e.event_time.ToDatetime(tzinfo=dt.UTC) < later for e in events(c, "registry", end_time=later))
    key_id = own_key_id(c)
    by_key = events(c, "registry", actor=key_id)
    assert by_key == events(c, "registry", actor="tenant:tests") and len(by_key) == len(every) - 2
    assert [e.action for e in events(c, "registry", actor="admin:admin")] == ["created", "created"]

    with pytest.raises(InvalidArgumentError) as bad_token:
        c.list_audit_events("registry", page_token="not-a-token").to_list()
    assert bad_token.value.field_violations[0].field == "page_token"
    with pytest.raises(InvalidArgumentError) as other_filters:
        c.list_audit_events("registry", actions="created", page_token=pages[1].next_page_token).to_list()
    assert other_filters.value.field_violations[0].field == "page_token"
    with pytest.raises(InvalidArgumentError) as backwards:
        c.list_audit_events("registry", start_time=later, end_time=later - dt.timedelta(seconds=1)).to_list()
    assert backwards.value.field_violations[0].field == "end_time"
    with pytest.raises(ValueError, match="keeps no audit trail"):
        c.list_audit_events("allocation")


def test_case_changes_are_the_case_trail_and_the_services_own_changes_are_marked(platform: Any) -> None:
    c = platform.client
    platform.campaign_with_numbers(PHONES[8:9])
    opened = platform.wait_until(lambda: _try_open(c, PHONES[8]), "remediation to learn the number")
    case = opened.case
    task = case.tasks[0]
    c.update_task(case.id, task.id, notes="checked the carrier portal", request_id="req-task-1")
    c.add_case_note(case.id, "called the carrier")
    # The scheduler quarantines the number through the registry, as remediation's service key.
    transition = platform.wait_until(lambda: events(c, "registry", resource_name=f"numbers/{PHONES[8]}",
                                                    actions="transitioned"), "the quarantine in the registry")[0]
    assert (transition.actor.name, transition.actor.role) == ("service:remediation", SERVICE)
    assert transition.request_id.startswith("rem:") and changes(transition)["state"][1] == (
        '"LIFECYCLE_STATE_QUARANTINED"')
    c.cancel_case(case.id, reason="false alarm")

    trail = events(c, "remediation", resource_name=f"cases/{case.id}")
    assert trail[0].action == "case.opened" and trail[0].actor.role == TENANT
    assert {e.resource_type for e in trail} == {"case", "task"}
    system = [e for e in trail if e.actor.role != TENANT]
    assert system and {e.actor.role for e in system} <= {SYSTEM, SERVICE} and "system:remediation" in {
        e.actor.name for e in system}
    assert not any(e.actor.api_key_id or e.request_id for e in system)
    (updated,) = [e for e in trail if e.action == "task.updated"]
    assert updated.resource_name == f"cases/{case.id}/tasks/{task.id}" and updated.request_id == "req-task-1"
    assert changes(updated) == {"notes": (f'"{task.notes}"' if task.notes else "", '"checked the carrier portal"')}
    assert [e.action for e in trail if e.actor.role == TENANT][-1] == "case.cancelled"
    statuses = [e for e in trail if e.action == "task.status"]
    assert statuses and all(changes(e)["status"][1] for e in statuses)
    # ListCaseEvents is this trail (read first: the scheduler may add to the case meanwhile).
    case_events = [(e.event_type, e.actor, e.detail, e.task_id) for e in c.case_events(case.id)]
    trail = events(c, "remediation", resource_name=f"cases/{case.id}")
    assert case_events == [
        (e.action, e.actor.name, e.reason, e.resource_name.split("/")[3] if e.resource_type == "task" else "")
        for e in trail][:len(case_events)]

    c.update_remediation_policy({"max_cycles": 2})
    created = c.create_alert_subscription("WEBHOOK", "https://127.0.0.1:9/hook", kinds=["CASE_OPENED"])
    c.delete_alert_subscription(created.subscription.id)
    settings = events(c, "remediation", resource_types=["remediation_policy", "alert_subscription"])
    assert [(e.action, e.resource_name) for e in settings] == [
        ("updated", "remediation_policy"), ("created", f"alert_subscriptions/{created.subscription.id}"),
        ("deleted", f"alert_subscriptions/{created.subscription.id}")]
    assert changes(settings[0]) == {"max_cycles": ("3", "2")}
    assert changes(settings[1])["target"] == ("", '"https://127.0.0.1:9/hook"')
    assert created.signing_secret and created.signing_secret not in str(settings)


def _try_open(client: Client, phone: str) -> rem.OpenCaseResponse | None:
    try:
        return client.open_case(phone, reason="audit test")
    except NotFoundError:  # remediation has not seen the number yet
        return None


def test_no_audit_event_holds_a_key_secret(platform: Any) -> None:
    c = platform.client
    created = c.create_api_key("integration")
    c.revoke_api_key(created.api_key.id)
    assert platform.admin is not None
    by_admin = platform.admin.create_api_key("by admin", tenant_id=platform.tenant)
    text = "\n".join(json_format.MessageToJson(e) for e in c.audit_trail())
    for secret in (created.secret, by_admin.secret):
        for shown in (secret, hashlib.sha256(secret.encode()).hexdigest(), secret[:12]):
            assert shown not in text
    assert created.api_key.id in text and by_admin.api_key.id in text


def test_the_audit_trail_merges_every_service_by_time(platform: Any) -> None:
    c = platform.client
    c.create_campaign("Merged")
    platform.clock.advance(dt.timedelta(seconds=1))
    c.update_scoring_policy({"complaint_threshold": 5})
    platform.clock.advance(dt.timedelta(seconds=1))
    c.update_remediation_policy({"max_cycles": 4})
    merged = list(c.audit_trail())
    times = [(e.event_time.seconds, e.event_time.nanos) for e in merged]
    assert times == sorted(times, reverse=True)
    assert [e.service for e in merged[:3]] == ["remediation", "scoring", "registry"]
    assert len(merged) == sum(len(events(c, s)) for s in ("registry", "scoring", "remediation"))
    oldest = list(c.audit_trail(oldest_first=True))
    assert [(e.event_time.seconds, e.event_time.nanos) for e in oldest] == sorted(times)
    assert sorted(e.SerializeToString() for e in oldest) == sorted(e.SerializeToString() for e in merged)

    async def listed() -> tuple[list[audit.AuditEvent], list[audit.AuditEvent]]:
        async with AsyncClient(ClientConfig(api_key=c.config.api_key, **platform.targets())) as nhm:
            one = await nhm.list_audit_events("scoring").to_list()
            every = [e async for e in nhm.audit_trail()]
            return one, every

    one, every = asyncio.run(listed())
    assert one == events(c, "scoring")[::-1]
    assert every == merged
