"""Allocation against the real registry and scoring services: what they publish is what allocation enforces."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from allocation.support import detail

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.allocation.v1 import allocation_pb2_grpc
from nhm.registry.v1 import registry_pb2 as rpb
from nhm.registry.v1 import registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm.type.v1 import types_pb2 as t
from nhm_allocation.app import SPEC as ALLOCATION
from nhm_platform.protoconv import to_timestamp
from nhm_registry.app import SPEC as REGISTRY
from nhm_scoring.app import SPEC as SCORING
from nhm_testing.keys import TENANT_A_KEY, auth

A = auth(TENANT_A_KEY)
SF1, SF2 = "+14158675301", "+14158675302"
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)


class Stack:
    def __init__(self, start_service, clock) -> None:
        clock.set(NOON_PT)
        self.clock = clock
        registry = start_service(REGISTRY)
        scoring = start_service(SCORING, registry_target=registry.address, rescore_interval=3600.0)
        allocation = start_service(ALLOCATION, registry_target=registry.address, scoring_target=scoring.address)
        self.channels = [h.channel() for h in (registry, scoring, allocation)]
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channels[0])
        self.scoring = scoring_pb2_grpc.ScoringServiceStub(self.channels[1])
        self.allocation = allocation_pb2_grpc.AllocationServiceStub(self.channels[2])
        self.calls = 0

    def campaign(self, **policy) -> str:
        campaign = rpb.Campaign(name="outbound", policy=rpb.CallingPolicy(sticky_caller_id=False, **policy))
        return self.registry.CreateCampaign(rpb.CreateCampaignRequest(campaign=campaign), metadata=A).campaign.id

    def numbers(self, campaign_id: str, *phones: str) -> None:
        specs = [rpb.NumberSpec(phone_number=p, display_name="Acme", campaign_ids=[campaign_id]) for p in phones]
        self.registry.BatchCreateNumbers(rpb.BatchCreateNumbersRequest(numbers=specs), metadata=A)

    def allocate(self, campaign_id: str, carrier: int = 0) -> pb.AllocateNumberResponse:
        self.calls += 1
        return self.allocation.AllocateNumber(pb.AllocateNumberRequest(
            campaign_id=campaign_id, destination=f"+1415902{self.calls:04d}", call_id=f"call-{self.calls}",
            destination_carrier=carrier), metadata=A, timeout=10)

    def refusal(self, campaign_id: str, carrier: int = 0) -> pb.AllocationRefusal | None:
        try:
            self.allocate(campaign_id, carrier)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            return detail(exc, pb.AllocationRefusal)
        return None

    def allocatable(self, campaign_id: str) -> bool:
        """Whether a call can be allocated (False while the campaign or its numbers have not arrived yet)."""
        try:
            self.allocate(campaign_id)
            return True
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED), exc
            return False

    def scored(self, phone: str) -> bool:
        """Whether scoring knows the number yet (it learns numbers from the registry's feed)."""
        try:
            self.scoring.GetHealth(spb.GetHealthRequest(phone_number=phone), metadata=A)
            return True
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.NOT_FOUND, exc
            return False

    def observe(self, phone: str, source: int, label: int) -> None:
        self.wait_until(lambda: self.scored(phone), f"scoring to learn {phone}")
        self.calls += 1
        observation = spb.ReputationObservation(event_id=f"obs-{self.calls}", phone_number=phone, source=source,
                                                label=label, observe_time=to_timestamp(self.clock.now()))
        summary = self.scoring.ReportReputationObservations(
            spb.ReportReputationObservationsRequest(observations=[observation]), metadata=A).summary
        assert summary.accepted == 1, summary

    def wait_until(self, condition, what: str, timeout: float = 10.0) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)
        return time.monotonic() - started

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


@pytest.fixture
def stack(start_service, clock):
    made = Stack(start_service, clock)
    yield made
    made.close()


def test_a_number_flagged_in_scoring_is_excluded_within_one_second(stack):
    campaign_id = stack.campaign()
    stack.numbers(campaign_id, SF1)
    stack.wait_until(lambda: stack.allocatable(campaign_id), "the registry's numbers to reach allocation")
    assert stack.allocate(campaign_id).caller_id == SF1
    stack.observe(SF1, t.REPUTATION_SOURCE_NOMOROBO, t.REPUTATION_LABEL_SPAM)
    reported = time.monotonic()

    def excluded() -> bool:
        refusal = stack.refusal(campaign_id)
        return refusal is not None and {e.reason: e.count for e in refusal.exclusions} == {
            pb.EXCLUSION_REASON_FLAGGED: 1}

    stack.wait_until(excluded, "the flag to reach allocation", timeout=5)
    elapsed = time.monotonic() - reported
    print(f"flag reached allocation in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    assert stack.refusal(campaign_id) is not None  # and it stays excluded


def test_carrier_labels_from_scoring_drive_carrier_aware_allocation(stack):
    campaign_id = stack.campaign()
    stack.numbers(campaign_id, SF1)
    stack.wait_until(lambda: stack.allocatable(campaign_id), "the registry's numbers to reach allocation")
    stack.observe(SF1, t.REPUTATION_SOURCE_TNS, t.REPUTATION_LABEL_SPAM)  # TNS labels for Verizon
    stack.wait_until(lambda: stack.refusal(campaign_id, t.CARRIER_VERIZON) is not None, "the Verizon flag")
    assert stack.allocate(campaign_id, t.CARRIER_ATT).caller_id == SF1
    assert stack.refusal(campaign_id) is not None  # carrier unknown: flagged somewhere is flagged


def test_registry_lifecycle_and_membership_changes_reach_allocation(stack):
    campaign_id = stack.campaign(daily_cap_per_number=50)
    stack.numbers(campaign_id, SF1, SF2)
    stack.wait_until(lambda: stack.allocatable(campaign_id), "the registry's numbers to reach allocation")
    rest_until = to_timestamp(stack.clock.now() + timedelta(days=14))
    stack.registry.TransitionNumber(rpb.TransitionNumberRequest(
        phone_number=SF1, target_state=t.LIFECYCLE_STATE_RESTING, reason="cool down", rest_until=rest_until),
        metadata=A)
    stack.registry.UnassignNumbers(rpb.UnassignNumbersRequest(campaign_id=campaign_id, phone_numbers=[SF2]),
                                   metadata=A)

    def only_resting_left() -> bool:
        refusal = stack.refusal(campaign_id)
        return refusal is not None and {e.reason: e.count for e in refusal.exclusions} == {
            pb.EXCLUSION_REASON_RESTING: 1}

    stack.wait_until(only_resting_left, "the rest and the unassignment to reach allocation")
    stack.registry.UpdateCampaign(rpb.UpdateCampaignRequest(
        campaign=rpb.Campaign(id=campaign_id, policy=rpb.CallingPolicy(daily_cap_per_number=7)),
        update_mask={"paths": ["policy.daily_cap_per_number"]}), metadata=A)
    stack.registry.AssignNumbers(rpb.AssignNumbersRequest(campaign_id=campaign_id, phone_numbers=[SF2]), metadata=A)
    stack.wait_until(lambda: stack.allocatable(campaign_id), "the reassignment")
    assert stack.allocate(campaign_id).usage.daily_cap == 7


def test_api_keys_created_in_the_registry_work_here(stack):
    created = stack.registry.CreateApiKey(rpb.CreateApiKeyRequest(name="dialer", role=rpb.API_KEY_ROLE_READ_ONLY),
                                          metadata=A)
    key = auth(created.secret)

    def known() -> bool:
        try:
            stack.allocation.GetReplicationStatus(pb.GetReplicationStatusRequest(), metadata=key)
            return True
        except grpc.RpcError:
            return False

    stack.wait_until(known, "the key to reach allocation")
    with pytest.raises(grpc.RpcError) as denied:
        stack.allocation.AllocateNumber(pb.AllocateNumberRequest(campaign_id="c", destination="+14159020001",
                                                                 call_id="x"), metadata=key)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    stack.registry.RevokeApiKey(rpb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=A)
    stack.wait_until(lambda: not known(), "the revocation to reach allocation")
