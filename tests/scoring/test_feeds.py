"""Feeds both ways: WatchHealth for allocation and remediation, and the registry's feed scoring follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from scoring.stack import SERVICE, A, B, error_of, factor, phone, status

from nhm.registry.v1 import registry_pb2 as rpb
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.type.v1 import types_pb2 as types
from nhm_testing.keys import auth

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
CREATED, UPDATED = types.CHANGE_KIND_CREATED, types.CHANGE_KIND_UPDATED


def read(stack, metadata=A, until_heartbeats=1, **request):
    """Responses of a WatchHealth stream up to the given number of heartbeats."""
    call = stack.scoring.WatchHealth(spb.WatchHealthRequest(**request), metadata=metadata, timeout=10)
    responses, beats = [], 0
    try:
        for response in call:
            responses.append(response)
            beats += response.heartbeat
            if beats >= until_heartbeats:
                break
    finally:
        call.cancel()
    return responses


def test_watch_health_snapshot_then_changes_with_transitions_and_resume(stack):
    stack.create_numbers(phone(1), phone(2))
    snapshot = read(stack, snapshot=True)
    items, heartbeat = snapshot[:-1], snapshot[-1]
    assert sorted(i.health.phone_number for i in items) == [phone(1), phone(2)]
    assert all(i.revision == 0 and i.kind == CREATED and status(i.health) == "HEALTHY" for i in items)
    assert heartbeat.heartbeat and heartbeat.revision > 0 and not heartbeat.HasField("health")
    head = heartbeat.revision

    stack.observe(phone(1), types.REPUTATION_SOURCE_TNS, types.REPUTATION_LABEL_SCAM, raw_label="Scam Likely")
    changes = [r for r in read(stack, after_revision=head) if not r.heartbeat]
    [change] = changes
    assert change.revision > head and change.kind == UPDATED
    assert change.change_time.ToDatetime(UTC) == NOW
    assert status(change.health) == "FLAGGED" and change.health.carrier_status["CARRIER_VERIZON"] == \
        types.HEALTH_STATUS_FLAGGED
    assert (status(change.transition, "from_status"), status(change.transition, "to_status")) == ("HEALTHY",
                                                                                                  "FLAGGED")
    assert change.transition.cause == "TNS: Scam Likely"
    # Resuming after that change gives nothing new; from the start, every change since the number was created.
    assert [r for r in read(stack, after_revision=change.revision) if not r.heartbeat] == []
    everything = [r for r in read(stack, after_revision=0) if not r.heartbeat]
    assert [(r.health.phone_number, r.kind) for r in everything] == [(phone(1), CREATED), (phone(2), CREATED),
                                                                     (phone(1), UPDATED)]
    assert [r.revision for r in everything] == sorted(r.revision for r in everything)
    assert everything[0].transition.from_status == types.HEALTH_STATUS_UNSPECIFIED


def test_a_live_watcher_sees_a_change_as_it_is_committed(stack):
    stack.create_numbers(phone(1))
    call = stack.scoring.WatchHealth(spb.WatchHealthRequest(snapshot=True), metadata=SERVICE, timeout=10)
    responses = iter(call)
    assert next(responses).kind == CREATED
    assert next(responses).heartbeat
    stack.complain(phone(1), 3)
    change = next(r for r in responses if not r.heartbeat)
    call.cancel()
    assert status(change.health) == "AT_RISK" and change.health.tenant_id == "acme"
    assert list(change.transition.factors) == [spb.RISK_FACTOR_KIND_COMPLAINTS]


def test_service_keys_watch_every_tenant_or_one(stack):
    stack.create_numbers(phone(1))
    stack.create_numbers(phone(2), metadata=B)
    every = [r.health.tenant_id for r in read(stack, metadata=SERVICE, snapshot=True) if not r.heartbeat]
    assert sorted(every) == ["acme", "globex"]
    one = [r.health.tenant_id for r in read(stack, metadata=SERVICE, snapshot=True, tenant_id="globex")
           if not r.heartbeat]
    assert one == ["globex"]
    history = [r.health.tenant_id for r in read(stack, metadata=SERVICE, after_revision=0) if not r.heartbeat]
    assert sorted(history) == ["acme", "globex"]


def test_a_resume_beyond_the_feeds_retention_is_refused(stack, clock):
    stack.create_numbers(phone(1))
    clock.advance(timedelta(days=8))
    stack.observe(phone(1), types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_MINOR)
    assert stack.rescore_now().pruned >= 1
    refused = error_of(lambda: read(stack, after_revision=0))
    assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION
    # A snapshot still works, and says where to resume.
    assert read(stack, snapshot=True)[0].health.phone_number == phone(1)


def test_registry_changes_reach_health(stack):
    stack.create_numbers(phone(1), attestation=types.ATTESTATION_A)
    clock_day = NOW.replace(hour=8)
    stack.report(stack.calls.day(phone(1), clock_day, calls=30, answered=10, inbound=2, span=timedelta(hours=6)))
    assert not factor(stack.health(phone(1)), spb.RISK_FACTOR_KIND_ATTESTATION).triggered

    update = rpb.UpdateNumberRequest(number=rpb.Number(phone_number=phone(1), attestation=types.ATTESTATION_C,
                                                       inbound_enabled=False),
                                     update_mask=FieldMask(paths=["attestation", "inbound_enabled"]))
    stack.registry.UpdateNumber(update, metadata=A)
    stack.wait_for(lambda: factor(stack.health(phone(1)), spb.RISK_FACTOR_KIND_ATTESTATION).triggered,
                   "the attestation change to reach scoring")
    health = stack.health(phone(1))
    inbound = factor(health, spb.RISK_FACTOR_KIND_INBOUND_USAGE)
    assert inbound.triggered and "inbound is disabled" in inbound.detail
    assert "C (gateway)" in factor(health, spb.RISK_FACTOR_KIND_ATTESTATION).detail

    campaign = stack.registry.CreateCampaign(rpb.CreateCampaignRequest(campaign=rpb.Campaign(name="c1")),
                                             metadata=A).campaign
    stack.registry.AssignNumbers(rpb.AssignNumbersRequest(campaign_id=campaign.id, phone_numbers=[phone(1)]),
                                 metadata=A)
    stack.wait_for(lambda: list(stack.health(phone(1)).campaign_ids) == [campaign.id], "the assignment")
    stack.registry.UnassignNumbers(rpb.UnassignNumbersRequest(campaign_id=campaign.id, phone_numbers=[phone(1)]),
                                   metadata=A)
    stack.wait_for(lambda: list(stack.health(phone(1)).campaign_ids) == [], "the unassignment")


def test_api_keys_created_in_the_registry_work_here_until_revoked(stack):
    stack.create_numbers(phone(1))
    created = stack.registry.CreateApiKey(rpb.CreateApiKeyRequest(name="dashboard",
                                                                  role=rpb.API_KEY_ROLE_READ_ONLY), metadata=A)
    reader = auth(created.secret)

    def works() -> bool:
        try:
            stack.health(phone(1), metadata=reader)
            return True
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAUTHENTICATED
            return False

    stack.wait_for(works, "the key to replicate")
    assert error_of(lambda: stack.report([stack.calls.outbound(phone(1), NOW)], metadata=reader)
                    ).code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_of(lambda: stack.scoring.UpdateScoringPolicy(
        spb.UpdateScoringPolicyRequest(update_mask=FieldMask(paths=["complaint_threshold"])), metadata=reader)
    ).code() is grpc.StatusCode.PERMISSION_DENIED
    stack.registry.RevokeApiKey(rpb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=A)
    stack.wait_for(lambda: not works(), "the revocation to replicate")
