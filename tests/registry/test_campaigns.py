"""Campaigns: CRUD, the calling policy's defaults and checks, assignments."""

from __future__ import annotations

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types

SF = "+14152220123"
DEFAULT_POLICY = pb.CallingPolicy(
    daily_cap_per_number=100, hourly_cap_per_number=50,
    local_presence=pb.LocalPresencePolicy(tiers=[types.LOCAL_PRESENCE_TIER_AREA_CODE, types.LOCAL_PRESENCE_TIER_REGION,
                                                 types.LOCAL_PRESENCE_TIER_COUNTRY, types.LOCAL_PRESENCE_TIER_ANY]),
    allow_at_risk=False, sticky_caller_id=True, sticky_ttl=Duration(seconds=30 * 86400),
    calling_window_start=types.TimeOfDay(hours=8), calling_window_end=types.TimeOfDay(hours=21),
    max_calls_per_prospect_per_day=3, max_calls_per_prospect_per_week=7, cap_reset_time_zone="America/New_York",
    fallback_behavior=pb.FALLBACK_BEHAVIOR_FAIL_CLOSED)


def test_create_fills_every_default_and_keeps_what_is_given(registry):
    campaign = registry.campaign("Q3 outbound")
    assert campaign.policy == DEFAULT_POLICY
    assert campaign.id.startswith("cmp_") and campaign.tenant_id == "acme" and campaign.etag
    given = registry.campaign("Florida", daily_cap_per_number=150, allow_at_risk=False,
                              calling_window_end=types.TimeOfDay(hours=20), cap_reset_time_zone="America/Chicago",
                              local_presence=pb.LocalPresencePolicy(tiers=[types.LOCAL_PRESENCE_TIER_REGION]))
    assert given.policy.daily_cap_per_number == 150 and given.policy.HasField("allow_at_risk")
    assert given.policy.calling_window_end.hours == 20 and given.policy.calling_window_start.hours == 8
    assert list(given.policy.local_presence.tiers) == [types.LOCAL_PRESENCE_TIER_REGION]
    got = registry.stub.GetCampaign(pb.GetCampaignRequest(campaign_id=given.id), metadata=registry.a).campaign
    assert got == given
    listed = registry.stub.ListCampaigns(pb.ListCampaignsRequest(page_size=1), metadata=registry.a)
    rest = registry.stub.ListCampaigns(pb.ListCampaignsRequest(page_size=1, page_token=listed.next_page_token),
                                       metadata=registry.a)
    assert [c.id for c in [*listed.campaigns, *rest.campaigns]] == sorted([campaign.id, given.id])
    assert not rest.next_page_token
    error = registry.error(lambda: registry.campaign("Florida"))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS and "campaign.name" in registry.violations(error)


def test_policy_checks_name_each_bad_field(registry):
    error = registry.error(lambda: registry.campaign(
        "", daily_cap_per_number=0, hourly_cap_per_number=-5, cap_reset_time_zone="Mars/Olympus",
        calling_window_start=types.TimeOfDay(hours=21), calling_window_end=types.TimeOfDay(hours=8),
        sticky_ttl=Duration(seconds=-1), max_calls_per_prospect_per_day=0,
        local_presence=pb.LocalPresencePolicy(tiers=[types.LOCAL_PRESENCE_TIER_AREA_CODE,
                                                     types.LOCAL_PRESENCE_TIER_AREA_CODE]),
        fallback_behavior=pb.FALLBACK_BEHAVIOR_FALLBACK_NUMBER))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(registry.violations(error)) == {
        "campaign.name", "campaign.policy.daily_cap_per_number", "campaign.policy.hourly_cap_per_number",
        "campaign.policy.cap_reset_time_zone", "campaign.policy.calling_window_end", "campaign.policy.sticky_ttl",
        "campaign.policy.max_calls_per_prospect_per_day", "campaign.policy.local_presence.tiers[1]",
        "campaign.policy.fallback_phone_number"}
    for zone in ["../../etc/passwd", "/etc/localtime", "Not/AZone"]:
        error = registry.error(lambda zone=zone: registry.campaign("z", cap_reset_time_zone=zone))
        assert "campaign.policy.cap_reset_time_zone" in registry.violations(error)
    assert not registry.stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=registry.a).campaigns


def test_fallback_number_must_be_one_of_the_tenants_numbers(registry):
    fallback = {"fallback_behavior": pb.FALLBACK_BEHAVIOR_FALLBACK_NUMBER, "fallback_phone_number": SF}
    error = registry.error(lambda: registry.campaign("fb", **fallback))
    assert "not one of this tenant's numbers" in registry.violations(error)["campaign.policy.fallback_phone_number"]
    registry.create(SF, metadata=registry.b)  # globex's number is not acme's
    error = registry.error(lambda: registry.campaign("fb", **fallback))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    registry.create(SF)
    assert registry.campaign("fb", **fallback).policy.fallback_phone_number == SF
    error = registry.error(lambda: registry.campaign("fb2", fallback_behavior=pb.FALLBACK_BEHAVIOR_FALLBACK_NUMBER,
                                                     fallback_phone_number="+18002220199"))
    assert "toll-free" in registry.violations(error)["campaign.policy.fallback_phone_number"]


def test_update_by_mask_with_etag_and_policy_fields(registry):
    campaign = registry.campaign("Old", daily_cap_per_number=120, hourly_cap_per_number=20)
    change = pb.Campaign(id=campaign.id, name="New", description="ignored",
                         policy=pb.CallingPolicy(daily_cap_per_number=80))
    updated = registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=change, update_mask=FieldMask(paths=["name", "policy.daily_cap_per_number"]), etag=campaign.etag),
        metadata=registry.a).campaign
    assert (updated.name, updated.description, updated.policy.daily_cap_per_number,
            updated.policy.hourly_cap_per_number) == ("New", "", 80, 20)
    # A named policy field that is not set goes back to its default; "policy" replaces the whole policy.
    reset = registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=pb.Campaign(id=campaign.id), update_mask=FieldMask(paths=["policy.hourly_cap_per_number"])),
        metadata=registry.a).campaign
    assert reset.policy.hourly_cap_per_number == 50 and reset.policy.daily_cap_per_number == 80
    whole = registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=pb.Campaign(id=campaign.id, policy=pb.CallingPolicy(allow_at_risk=True)),
        update_mask=FieldMask(paths=["policy"])), metadata=registry.a).campaign
    expected = pb.CallingPolicy()
    expected.CopyFrom(DEFAULT_POLICY)
    expected.allow_at_risk = True
    assert whole.policy == expected
    for paths, field in [(["tenant_id"], "update_mask.paths[0]"), (["name", "number_count"], "update_mask.paths[1]"),
                         (["policy.nonsense"], "update_mask.paths[0]"), (["etag"], "update_mask.paths[0]")]:
        error = registry.error(lambda paths=paths: registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(
            campaign=pb.Campaign(id=campaign.id, name="x", tenant_id="globex"), update_mask=FieldMask(paths=paths)),
            metadata=registry.a))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and field in registry.violations(error), paths
    error = registry.error(lambda: registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=pb.Campaign(id=campaign.id, name="x"), update_mask=FieldMask(paths=["name"]), etag=campaign.etag),
        metadata=registry.a))
    assert error.code() is grpc.StatusCode.ABORTED
    error = registry.error(lambda: registry.stub.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=pb.Campaign(id=campaign.id, policy=pb.CallingPolicy(daily_cap_per_number=-1)),
        update_mask=FieldMask(paths=["policy.daily_cap_per_number"])), metadata=registry.a))
    assert "campaign.policy.daily_cap_per_number" in registry.violations(error)
    final = registry.stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign.id), metadata=registry.a).campaign
    assert final == whole


def test_assign_unassign_and_delete(registry):
    numbers = [registry.phone(i) for i in range(3)]
    for number in numbers:
        registry.create(number)
    first, second = registry.campaign("one"), registry.campaign("two")
    assigned = registry.stub.AssignNumbers(pb.AssignNumbersRequest(
        campaign_id=first.id, phone_numbers=[*numbers, numbers[0]]), metadata=registry.a).campaign
    assert assigned.number_count == 3
    again = registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=first.id, phone_numbers=numbers[:1]),
                                        metadata=registry.a).campaign
    assert again.number_count == 3  # assigning twice changes nothing
    registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=second.id, phone_numbers=numbers[:1]),
                                metadata=registry.a)
    got = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=numbers[0]), metadata=registry.a).number
    assert sorted(got.campaign_ids) == sorted([first.id, second.id])
    listed = registry.stub.ListNumbers(pb.ListNumbersRequest(campaign_id=second.id), metadata=registry.a).numbers
    assert [n.phone_number for n in listed] == numbers[:1]
    error = registry.error(lambda: registry.stub.AssignNumbers(pb.AssignNumbersRequest(
        campaign_id=first.id, phone_numbers=["+12122220100", "nope"]), metadata=registry.a))
    assert registry.violations(error).keys() == {"phone_numbers[1]"}
    error = registry.error(lambda: registry.stub.AssignNumbers(pb.AssignNumbersRequest(
        campaign_id=first.id, phone_numbers=["+12122220100"]), metadata=registry.a))
    assert registry.violations(error).keys() == {"phone_numbers[0]"}  # not a number of this tenant
    removed = registry.stub.UnassignNumbers(pb.UnassignNumbersRequest(
        campaign_id=first.id, phone_numbers=[numbers[1], "+12122220100"]), metadata=registry.a).campaign
    assert removed.number_count == 2
    error = registry.error(lambda: registry.stub.DeleteCampaign(pb.DeleteCampaignRequest(
        campaign_id=first.id, etag="stale"), metadata=registry.a))
    assert error.code() is grpc.StatusCode.ABORTED
    registry.stub.DeleteCampaign(pb.DeleteCampaignRequest(campaign_id=first.id, etag=first.etag), metadata=registry.a)
    error = registry.error(lambda: registry.stub.GetCampaign(pb.GetCampaignRequest(campaign_id=first.id),
                                                             metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    got = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=numbers[0]), metadata=registry.a).number
    assert list(got.campaign_ids) == [second.id]
    error = registry.error(lambda: registry.stub.AssignNumbers(pb.AssignNumbersRequest(
        campaign_id=first.id, phone_numbers=numbers), metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_numbers_can_join_campaigns_when_created(registry):
    campaign = registry.campaign("pool")
    created = registry.stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=[
        pb.NumberSpec(phone_number=registry.phone(i), campaign_ids=[campaign.id]) for i in range(3)]),
        metadata=registry.a).numbers
    assert all(list(n.campaign_ids) == [campaign.id] for n in created)
    assert registry.stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign.id),
                                     metadata=registry.a).campaign.number_count == 3
    error = registry.error(lambda: registry.create(registry.phone(9), campaign_ids=["cmp_missing"]))
    assert registry.violations(error).keys() == {"number.campaign_ids[0]"}
