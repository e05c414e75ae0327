"""Tenant isolation: with acme's key, every RPC on globex's objects is NOT_FOUND and changes nothing."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types

SF = "+14152220123"


def test_another_tenants_objects_are_not_found_and_untouched(registry):
    theirs = registry.create(SF, metadata=registry.b, labels={"owner": "globex"})
    campaign = registry.campaign("theirs", metadata=registry.b)
    registry.stub.AssignNumbers(pb.AssignNumbersRequest(campaign_id=campaign.id, phone_numbers=[SF]),
                                metadata=registry.b)
    key = registry.stub.CreateApiKey(pb.CreateApiKeyRequest(name="k", role=pb.API_KEY_ROLE_TENANT),
                                     metadata=registry.b).api_key
    s = registry.stub
    calls = {
        "GetNumber": lambda: s.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a),
        "UpdateNumber": lambda: s.UpdateNumber(pb.UpdateNumberRequest(
            number=pb.Number(phone_number=SF, display_name="MINE"), update_mask=FieldMask(paths=["display_name"])),
            metadata=registry.a),
        "RetireNumber": lambda: s.RetireNumber(pb.RetireNumberRequest(phone_number=SF), metadata=registry.a),
        "TransitionNumber": lambda: s.TransitionNumber(pb.TransitionNumberRequest(
            phone_number=SF, target_state=types.LIFECYCLE_STATE_RESTING,
            rest_until=Timestamp(seconds=1_768_800_000)), metadata=registry.a),
        "ListNumberTransitions": lambda: s.ListNumberTransitions(pb.ListNumberTransitionsRequest(phone_number=SF),
                                                                 metadata=registry.a),
        "GetCampaign": lambda: s.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign.id), metadata=registry.a),
        "UpdateCampaign": lambda: s.UpdateCampaign(pb.UpdateCampaignRequest(
            campaign=pb.Campaign(id=campaign.id, name="mine"), update_mask=FieldMask(paths=["name"])),
            metadata=registry.a),
        "DeleteCampaign": lambda: s.DeleteCampaign(pb.DeleteCampaignRequest(campaign_id=campaign.id),
                                                   metadata=registry.a),
        "AssignNumbers": lambda: s.AssignNumbers(pb.AssignNumbersRequest(campaign_id=campaign.id,
                                                                         phone_numbers=[SF]), metadata=registry.a),
        "UnassignNumbers": lambda: s.UnassignNumbers(pb.UnassignNumbersRequest(campaign_id=campaign.id,
                                                                               phone_numbers=[SF]),
                                                     metadata=registry.a),
        "ListNumbers(campaign)": lambda: s.ListNumbers(pb.ListNumbersRequest(campaign_id=campaign.id),
                                                       metadata=registry.a),
        "GetTenant": lambda: s.GetTenant(pb.GetTenantRequest(tenant_id="globex"), metadata=registry.a),
        "UpdateTenant": lambda: s.UpdateTenant(pb.UpdateTenantRequest(
            tenant=pb.Tenant(id="globex", display_name="x"), update_mask=FieldMask(paths=["display_name"])),
            metadata=registry.a),
        "CreateApiKey": lambda: s.CreateApiKey(pb.CreateApiKeyRequest(name="x", role=pb.API_KEY_ROLE_TENANT,
                                                                      tenant_id="globex"), metadata=registry.a),
        "RevokeApiKey": lambda: s.RevokeApiKey(pb.RevokeApiKeyRequest(api_key_id=key.id), metadata=registry.a),
        "WatchChanges": lambda: next(iter(s.WatchChanges(pb.WatchChangesRequest(tenant_id="globex"),
                                                         metadata=registry.a, timeout=5))),
    }
    for name, call in calls.items():
        assert registry.error(call).code() is grpc.StatusCode.NOT_FOUND, name

    # Nothing of globex's shows in acme's lists, and acme may own the same number on its own.
    assert not s.ListNumbers(pb.ListNumbersRequest(), metadata=registry.a).numbers
    assert not s.ListNumbers(pb.ListNumbersRequest(labels={"owner": "globex"}), metadata=registry.a).numbers
    assert not s.ListCampaigns(pb.ListCampaignsRequest(), metadata=registry.a).campaigns
    assert [k.id for k in s.ListApiKeys(pb.ListApiKeysRequest(include_revoked=True),
                                        metadata=registry.a).api_keys] == []
    mine = registry.create(SF)
    assert mine.tenant_id == "acme" and mine.etag != theirs.etag
    # A campaign id of globex cannot be attached to acme's numbers either.
    error = registry.error(lambda: registry.create("+14152220124", campaign_ids=[campaign.id]))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT

    # globex's objects are exactly as they were.
    after = s.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.b).number
    assert after == s.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.b).number
    assert (after.etag, after.display_name, after.state, list(after.campaign_ids)) == (
        theirs.etag, "", types.LIFECYCLE_STATE_ACTIVE, [campaign.id])
    got = s.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign.id), metadata=registry.b).campaign
    assert (got.name, got.etag, got.number_count) == ("theirs", campaign.etag, 1)
    listed = s.ListApiKeys(pb.ListApiKeysRequest(), metadata=registry.b).api_keys
    assert [(k.id, k.HasField("revoke_time")) for k in listed] == [(key.id, False)]
    assert s.GetTenant(pb.GetTenantRequest(), metadata=registry.b).tenant.display_name == "globex"
