"""Every registry method of the SDK against a real registry: numbers, campaigns, tenants, keys, the feed."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest

from nhm.registry.v1 import registry_pb2 as reg
from nhm.type.v1 import types_pb2 as types
from nhm_sdk import (
    AbortedError,
    AlreadyExistsError,
    Client,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from nhm_testing.keys import TENANT_A, TENANT_B_KEY
from nhm_testing.services import ServiceHandle

SF = [f"+1415867{i:04d}" for i in range(1000, 1020)]
NY = [f"+1212736{i:04d}" for i in range(2000, 2020)]


def test_create_get_and_update_a_number_with_plain_values(client: Client) -> None:
    created = client.create_number(SF[0], display_name="Acme Sales", attestation="A", labels={"team": "west"},
                                   inbound_enabled=True)
    assert created.phone_number == SF[0]
    assert (created.area_code, created.region, created.state) == ("415", "CA", types.LIFECYCLE_STATE_ACTIVE)
    assert created.attestation == types.ATTESTATION_A

    fetched = client.get_number(SF[0])
    assert fetched.display_name == "Acme Sales" and dict(fetched.labels) == {"team": "west"}

    updated = client.update_number(SF[0], display_name="Acme West", etag=fetched.etag)
    assert updated.display_name == "Acme West"
    # Only the named field changed: the update mask comes from the keyword arguments given.
    assert dict(updated.labels) == {"team": "west"} and updated.inbound_enabled

    with pytest.raises(AbortedError):
        client.update_number(SF[0], provider="Telnyx", etag=fetched.etag)  # stale etag


def test_create_number_accepts_a_mapping_or_a_message(client: Client) -> None:
    from_mapping = client.create_number({"phone_number": SF[1], "provider": "Twilio",
                                         "warmup_plan": {"daily_caps": [10, 20], "step_duration": 86400},
                                         "start_warming": True})
    assert from_mapping.state == types.LIFECYCLE_STATE_WARMING
    assert list(from_mapping.warmup_plan.daily_caps) == [10, 20]
    from_message = client.create_number(reg.NumberSpec(phone_number=SF[2], provider="Bandwidth"))
    assert from_message.provider == "Bandwidth"


def test_a_write_retried_with_the_same_request_id_is_applied_once(client: Client) -> None:
    first = client.create_number(SF[3], request_id="req-create-1")
    again = client.create_number(SF[3], request_id="req-create-1")
    assert again.phone_number == first.phone_number and again.create_time == first.create_time
    with pytest.raises(AlreadyExistsError) as caught:
        client.create_number(SF[3])  # a new request id: a second create, refused
    assert caught.value.reason


def test_import_numbers_is_all_or_nothing_and_names_each_bad_row(client: Client) -> None:
    campaign = client.create_campaign("Import target")
    with pytest.raises(InvalidArgumentError) as caught:
        client.import_numbers([SF[4], "not-a-number", SF[5], "+1212"])
    fields = {v.field for v in caught.value.field_violations}
    assert fields == {"numbers[1].phone_number", "numbers[3].phone_number"}
    assert caught.value.violation("numbers[1].phone_number") is not None
    assert list(client.list_numbers(phone_number_prefix="+1415867")) == []  # nothing stored

    imported = client.import_numbers([SF[4], {"phone_number": SF[5], "display_name": "Five"}],
                                     campaign_ids=[campaign.id])
    assert [n.phone_number for n in imported] == [SF[4], SF[5]]
    assert all(campaign.id in n.campaign_ids for n in imported)


def test_list_numbers_pages_transparently_and_filters(client: Client) -> None:
    client.import_numbers(SF[:7] + NY[:3])
    pages = list(client.list_numbers(page_size=3).pages())
    assert [len(p.items) for p in pages] == [3, 3, 3, 1]
    everything = [n.phone_number for n in client.list_numbers(page_size=3)]
    assert sorted(everything) == sorted(SF[:7] + NY[:3]) and len(set(everything)) == 10

    assert {n.area_code for n in client.list_numbers(area_code="212")} == {"212"}
    assert len(client.list_numbers(region="NY").to_list()) == 3
    assert len(list(client.list_numbers(page_size=2, limit=5))) == 5
    # Pages stop at the one that reaches the limit: no call for a page nobody reads.
    assert [len(p.items) for p in client.list_numbers(page_size=3, limit=4).pages()] == [3, 3]
    newest_first = [n.phone_number for n in client.list_numbers(order_by="phone_number", descending=True)]
    assert newest_first == sorted(newest_first, reverse=True)


def test_a_listing_starts_at_a_page_token_from_an_earlier_page(client: Client) -> None:
    client.import_numbers(SF[10:20])
    in_order = sorted(SF[10:20])
    first = client.list_numbers(page_size=4, order_by="phone_number").first_page
    assert [n.phone_number for n in first.items] == in_order[:4] and first.next_page_token

    second = client.list_numbers(page_size=4, order_by="phone_number", page_token=first.next_page_token)
    assert [n.phone_number for n in second.first_page.items] == in_order[4:8]
    # Iterating after reading first_page goes on from that page: no item twice, none left out.
    assert [n.phone_number for n in second] == in_order[4:]
    last = list(client.list_numbers(page_size=4, order_by="phone_number",
                                    page_token=second.first_page.next_page_token).pages())
    assert [[n.phone_number for n in page.items] for page in last] == [in_order[8:]]
    assert last[-1].next_page_token == ""

    with pytest.raises(InvalidArgumentError):  # a token resumes only the listing it came from
        client.list_numbers(page_size=4, area_code="212", page_token=first.next_page_token).to_list()


def test_every_list_method_can_start_at_a_page_token() -> None:
    import inspect

    methods = {name: member for name, member in vars(Client).items()
               if not name.startswith("_") and inspect.isfunction(member)}
    listings = [name for name, method in methods.items()
                if "PageIterator" in str(inspect.signature(method).return_annotation)]
    assert len(listings) == 12
    for name in listings:
        parameter = inspect.signature(methods[name]).parameters.get("page_token")
        assert parameter is not None and parameter.default == "", name


def test_lifecycle_transitions_and_history(client: Client) -> None:
    client.create_number(SF[8])
    response = client.transition_number(SF[8], "QUARANTINED", reason="spam label")
    assert response.number.state == types.LIFECYCLE_STATE_QUARANTINED
    assert response.transition.to_state == types.LIFECYCLE_STATE_QUARANTINED
    rest_until = dt.datetime.now(dt.UTC) + dt.timedelta(days=14)
    resting = client.transition_number(SF[8], types.LIFECYCLE_STATE_RESTING, reason="rest", rest_until=rest_until)
    assert resting.number.state == types.LIFECYCLE_STATE_RESTING
    with pytest.raises(ValueError, match="naive datetime"):
        client.transition_number(SF[8], "RESTING", rest_until=dt.datetime(2030, 1, 1))

    history = list(client.list_number_transitions(SF[8], page_size=1))
    assert [t.to_state for t in history][:2] == [types.LIFECYCLE_STATE_RESTING, types.LIFECYCLE_STATE_QUARANTINED]

    retired = client.retire_number(SF[8], reason="burned")
    assert retired.state == types.LIFECYCLE_STATE_RETIRED


def test_unknown_enum_names_are_refused_before_any_call(client: Client) -> None:
    with pytest.raises(ValueError, match="unknown LifecycleState 'SLEEPING'"):
        client.list_numbers(states=["SLEEPING"])


def test_campaigns_and_assignments(client: Client) -> None:
    client.import_numbers(SF[10:14])
    campaign = client.create_campaign("Q3 outbound", description="west coast",
                                      policy={"daily_cap_per_number": 80, "calling_window_start": "09:00",
                                              "sticky_ttl": dt.timedelta(days=14)})
    assert campaign.policy.daily_cap_per_number == 80
    assert (campaign.policy.calling_window_start.hours, campaign.policy.sticky_ttl.seconds) == (9, 14 * 86400)
    assert client.get_campaign(campaign.id).name == "Q3 outbound"

    assigned = client.assign_numbers(campaign.id, SF[10:14])
    assert assigned.number_count == 4
    assert {n.phone_number for n in client.list_numbers(campaign_id=campaign.id)} == set(SF[10:14])
    assert client.unassign_numbers(campaign.id, SF[10:12]).number_count == 2

    # A mapping changes only the policy fields it names.
    updated = client.update_campaign(campaign.id, policy={"hourly_cap_per_number": 20})
    assert (updated.policy.hourly_cap_per_number, updated.policy.daily_cap_per_number) == (20, 80)
    renamed = client.update_campaign(campaign.id, name="Q3 outbound (west)", etag=updated.etag)
    assert renamed.name == "Q3 outbound (west)"

    second = client.create_campaign("Q4")
    assert {c.id for c in client.list_campaigns(page_size=1)} == {campaign.id, second.id}
    client.delete_campaign(second.id)
    with pytest.raises(NotFoundError):
        client.get_campaign(second.id)


def test_tenants_need_an_admin_key(client: Client, admin: Client) -> None:
    tenant = admin.create_tenant("initech", display_name="Initech",
                                 business_profile={"legal_name": "Initech LLC", "expected_monthly_volume": 20000})
    assert tenant.business_profile.legal_name == "Initech LLC"
    assert admin.get_tenant("initech").display_name == "Initech"
    with pytest.raises(PermissionDeniedError):
        client.create_tenant("hooli")

    own = client.get_tenant()
    assert own.id == TENANT_A
    profile = client.update_tenant(business_profile={"website": "https://acme.example"}).business_profile
    assert profile.website == "https://acme.example"


def test_api_keys_work_at_once_and_stop_when_revoked(client: Client, registry: ServiceHandle,
                                                     make_client: Callable[..., Client]) -> None:
    created = client.create_api_key("dialer-1")
    assert created.secret and created.api_key.prefix and created.secret.startswith(created.api_key.prefix)
    reader = client.create_api_key("dashboard", role="READ_ONLY")

    dialer = make_client(registry_target=registry.address, api_key=created.secret)
    dialer.create_number(SF[15])
    readonly = make_client(registry_target=registry.address, api_key=reader.secret)
    assert readonly.get_number(SF[15]).phone_number == SF[15]
    with pytest.raises(PermissionDeniedError):
        readonly.create_number(SF[16])

    assert {k.name for k in client.list_api_keys(page_size=1)} >= {"dialer-1", "dashboard"}
    revoked = client.revoke_api_key(created.api_key.id)
    assert revoked.HasField("revoke_time")
    with pytest.raises(UnauthenticatedError):
        dialer.get_number(SF[15])
    assert created.api_key.id not in {k.id for k in client.list_api_keys()}
    assert created.api_key.id in {k.id for k in client.list_api_keys(include_revoked=True)}


def test_another_tenants_number_does_not_exist(client: Client, registry: ServiceHandle,
                                               make_client: Callable[..., Client]) -> None:
    client.create_number(SF[17])
    globex = make_client(registry_target=registry.address, api_key=TENANT_B_KEY)
    with pytest.raises(NotFoundError) as caught:
        globex.get_number(SF[17])
    assert caught.value.request_id  # the server's request id, to quote in a support request


def test_watch_changes_streams_a_snapshot_then_live_changes(client: Client) -> None:
    client.create_number(SF[18])
    seen: list[reg.WatchChangesResponse] = []
    snapshot_done, got_live = threading.Event(), threading.Event()
    with client.watch_changes(snapshot=True) as stream:
        def read() -> None:
            for change in stream:
                seen.append(change)
                if change.heartbeat:
                    snapshot_done.set()  # the heartbeat after the snapshot: live changes follow
                if change.WhichOneof("resource") == "number" and change.number.phone_number == SF[19]:
                    got_live.set()
                    return
        reader = threading.Thread(target=read)
        reader.start()
        assert snapshot_done.wait(20)
        client.create_number(SF[19])
        assert got_live.wait(20), seen
        reader.join(5)
    snapshot = [c for c in seen if c.revision == 0 and not c.heartbeat]
    assert any(c.number.phone_number == SF[18] for c in snapshot)
    live = [c for c in seen if c.revision > 0 and not c.heartbeat]
    assert live[-1].kind == types.CHANGE_KIND_CREATED


def test_watch_stream_cancel_ends_iteration_quietly(client: Client) -> None:
    stream = client.watch_changes()
    timer = threading.Timer(0.3, stream.cancel)
    timer.start()
    items = list(stream)  # ends when cancelled, no error
    timer.join()
    assert all(item.heartbeat or item.revision >= 0 for item in items)
