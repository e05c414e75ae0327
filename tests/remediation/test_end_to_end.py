"""Remediation through the real registry, scoring and allocation services: spam labels open a case, the number
is quarantined and no longer allocated, disputes go to the labelling sources with evidence from the ingested
calls, the rest ends in a warm-up whose caps allocation enforces, clean observations bring it back to ACTIVE;
a number flagged again mid-warm-up escalates; one still labelled past the policy's limit is retired. A webhook
receiver that fails every first attempt still gets each alert once."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from remediation.support import Remediation, WebhookReceiver, saw_health, saw_transition, tasks_of, wait_for

from nhm.allocation.v1 import allocation_pb2 as apb
from nhm.allocation.v1 import allocation_pb2_grpc
from nhm.registry.v1 import registry_pb2 as gpb
from nhm.registry.v1 import registry_pb2_grpc
from nhm.remediation.v1 import remediation_pb2 as rpb
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm.type.v1 import types_pb2 as t
from nhm_allocation.app import SPEC as ALLOCATION
from nhm_platform.protoconv import to_duration, to_timestamp
from nhm_registry.app import SPEC as REGISTRY
from nhm_remediation.alerting import verify
from nhm_remediation.app import SPEC as REMEDIATION
from nhm_scoring.app import SPEC as SCORING
from nhm_testing.keys import TENANT_A_KEY, auth

A = auth(TENANT_A_KEY)
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)  # a Tuesday, inside every US calling window
FLAGGED, AGAIN, BACKUP, SPARE1, SPARE2 = ("+14158675311", "+14158675312", "+14158675313", "+14158675314",
                                          "+14158675315")
FAST = {"scheduler_interval": 0.05, "watch_poll_interval": 0.05, "allow_http_webhooks": True}


class Stack:
    def __init__(self, start_service, clock) -> None:
        clock.set(NOON_PT)
        self.clock = clock
        registry = start_service(REGISTRY, watch_poll_interval=0.05)
        scoring = start_service(SCORING, registry_target=registry.address, rescore_interval=3600.0,
                                watch_poll_interval=0.05)
        allocation = start_service(ALLOCATION, registry_target=registry.address, scoring_target=scoring.address)
        remediation = start_service(REMEDIATION, registry_target=registry.address, scoring_target=scoring.address,
                                    **FAST)
        self.channels = [h.channel() for h in (registry, scoring, allocation, remediation)]
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channels[0])
        self.scoring = scoring_pb2_grpc.ScoringServiceStub(self.channels[1])
        self.allocation = allocation_pb2_grpc.AllocationServiceStub(self.channels[2])
        self.remediation = Remediation(self.channels[3], TENANT_A_KEY)
        self.events = 0

    def setup(self, *phones: str) -> str:
        profile = gpb.BusinessProfile(legal_name="Acme Outbound LLC", address="1 Market St, San Francisco, CA",
                                      website="https://acme.example", call_purpose="B2B software sales follow-up",
                                      expected_monthly_volume=30000)
        tenant = self.registry.GetTenant(gpb.GetTenantRequest(), metadata=A).tenant
        self.registry.UpdateTenant(gpb.UpdateTenantRequest(
            tenant=gpb.Tenant(id=tenant.id, business_profile=profile),
            update_mask=field_mask_pb2.FieldMask(paths=["business_profile"])), metadata=A)
        campaign = gpb.Campaign(name="outbound", policy=gpb.CallingPolicy(sticky_caller_id=False))
        campaign_id = self.registry.CreateCampaign(gpb.CreateCampaignRequest(campaign=campaign), metadata=A).campaign.id
        specs = [gpb.NumberSpec(phone_number=p, display_name="Acme", attestation=t.ATTESTATION_B,
                                campaign_ids=[campaign_id]) for p in phones]
        self.registry.BatchCreateNumbers(gpb.BatchCreateNumbersRequest(numbers=specs), metadata=A)
        return campaign_id

    def solo_campaign(self, phone: str) -> str:
        campaign = gpb.Campaign(name=f"solo {phone}", policy=gpb.CallingPolicy(sticky_caller_id=False))
        campaign_id = self.registry.CreateCampaign(gpb.CreateCampaignRequest(campaign=campaign), metadata=A).campaign.id
        self.registry.AssignNumbers(gpb.AssignNumbersRequest(campaign_id=campaign_id, phone_numbers=[phone]),
                                    metadata=A)
        return campaign_id

    def allocate(self, campaign_id: str) -> str | None:
        """The caller ID allocated, or None when allocation refuses (nothing eligible)."""
        self.events += 1
        try:
            return self.allocation.AllocateNumber(apb.AllocateNumberRequest(
                campaign_id=campaign_id, destination=f"+1415902{self.events:04d}", call_id=f"call-{self.events}"),
                metadata=A, timeout=10).caller_id
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND), exc
            return None

    def calls(self, phone: str, days: int, outbound: int, answered: int, talk: int) -> dict[str, tuple[int, int]]:
        """Report `days` days of healthy calling ending yesterday; returns {date: (outbound, answered)}."""
        outcomes, per_day = [], {}
        for back in range(days, 0, -1):
            day = self.clock.now() - timedelta(days=back)
            per_day[day.date().isoformat()] = (outbound, answered)
            for i in range(outbound):
                self.events += 1
                ok = i < answered
                outcomes.append(spb.CallOutcome(
                    event_id=f"call-{self.events}", phone_number=phone, direction=spb.CALL_DIRECTION_OUTBOUND,
                    remote_number=f"+1212736{self.events % 10000:04d}", start_time=to_timestamp(day + timedelta(
                        minutes=3 * i)), answered=ok, talk_duration=to_duration(timedelta(seconds=talk if ok else 0)),
                    sip_code=200 if ok else 480,
                    disposition=spb.CALL_DISPOSITION_ANSWERED if ok else spb.CALL_DISPOSITION_NO_ANSWER))
            for i in range(3):  # callbacks: the number answers inbound too
                self.events += 1
                outcomes.append(spb.CallOutcome(
                    event_id=f"call-{self.events}", phone_number=phone, direction=spb.CALL_DIRECTION_INBOUND,
                    remote_number=f"+1212736{self.events % 10000:04d}", answered=True,
                    start_time=to_timestamp(day + timedelta(hours=5, minutes=i)),
                    talk_duration=to_duration(timedelta(seconds=90)), sip_code=200,
                    disposition=spb.CALL_DISPOSITION_ANSWERED))
        summary = self.scoring.ReportCallOutcomes(spb.ReportCallOutcomesRequest(outcomes=outcomes), metadata=A).summary
        assert summary.rejected == 0, summary.rejections
        return per_day

    def observe(self, phone: str, label: int, *sources: int) -> None:
        observations = []
        for source in sources:
            self.events += 1
            observations.append(spb.ReputationObservation(
                event_id=f"obs-{self.events}", phone_number=phone, source=source, label=label,
                raw_label={t.REPUTATION_LABEL_SPAM: "Spam Likely"}.get(label, ""),
                observe_time=to_timestamp(self.clock.now())))
        summary = self.scoring.ReportReputationObservations(spb.ReportReputationObservationsRequest(
            observations=observations), metadata=A).summary
        assert summary.rejected == 0, summary.rejections

    def scored(self, phone: str) -> bool:
        """Whether scoring knows the number yet (it learns numbers from the registry's feed)."""
        try:
            self.scoring.GetHealth(spb.GetHealthRequest(phone_number=phone), metadata=A)
            return True
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.NOT_FOUND, exc
            return False

    def number(self, phone: str) -> gpb.Number:
        return self.registry.GetNumber(gpb.GetNumberRequest(phone_number=phone), metadata=A).number

    def transitions(self, phone: str) -> list[gpb.NumberTransition]:
        response = self.registry.ListNumberTransitions(gpb.ListNumberTransitionsRequest(phone_number=phone),
                                                       metadata=A)
        return list(reversed(response.transitions))  # oldest first

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


@pytest.fixture
def stack(start_service, clock):
    made = Stack(start_service, clock)
    yield made
    made.close()


@pytest.fixture
def receiver():
    server = WebhookReceiver(fail_first=True)
    yield server
    server.close()


def delivered(receiver: WebhookReceiver, count: int, clock) -> None:
    """Wait for ``count`` alerts accepted; failed first attempts are retried once their backoff is due."""
    def check() -> bool:
        if len(receiver.accepted) < count:
            clock.advance(timedelta(seconds=31))
            return False
        return True
    wait_for(check, timeout=40, interval=0.2, what=f"{count} alerts delivered")


def test_spam_labels_to_quarantine_rest_warmup_and_back_with_an_escalating_variant(stack, receiver):
    api = stack.remediation
    campaign_id = stack.setup(FLAGGED, AGAIN, BACKUP, SPARE1, SPARE2)
    solo = stack.solo_campaign(FLAGGED)
    subscription = api.CreateAlertSubscription(rpb.CreateAlertSubscriptionRequest(
        subscription=rpb.AlertSubscription(channel=rpb.ALERT_CHANNEL_WEBHOOK, target=receiver.url, kinds=[
            rpb.ALERT_KIND_NUMBER_FLAGGED, rpb.ALERT_KIND_CASE_ESCALATED, rpb.ALERT_KIND_CASE_RESOLVED])))
    wait_for(lambda: stack.allocate(solo) == FLAGGED, what="numbers reach allocation")
    wait_for(lambda: stack.scored(FLAGGED) and stack.scored(AGAIN), what="numbers reach scoring")
    per_day = stack.calls(FLAGGED, days=5, outbound=40, answered=12, talk=75)

    # Spam labels from two sources: a case opens, the number is quarantined and then rests.
    stack.observe(FLAGGED, t.REPUTATION_LABEL_SPAM, t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_NOMOROBO)
    stack.observe(AGAIN, t.REPUTATION_LABEL_SPAM, t.REPUTATION_SOURCE_TNS)
    case = api.wait_case(FLAGGED, lambda c: c.stage == rpb.CASE_STAGE_RESTING
                         and tasks_of(c, rpb.TASK_KIND_REGISTRATION), "case resting")
    saw_transition(api, case.id, "RESTING")
    moves = stack.transitions(FLAGGED)[1:]  # after its creation
    assert [(m.from_state, m.to_state) for m in moves] == [
        (t.LIFECYCLE_STATE_ACTIVE, t.LIFECYCLE_STATE_QUARANTINED),
        (t.LIFECYCLE_STATE_QUARANTINED, t.LIFECYCLE_STATE_RESTING)]
    assert all("remediation" in m.reason for m in moves)
    assert stack.number(FLAGGED).rest_until.ToDatetime(tzinfo=UTC) == NOON_PT + timedelta(days=14)
    wait_for(lambda: stack.allocate(solo) is None, what="no longer allocated")
    assert all(stack.allocate(campaign_id) != FLAGGED for _ in range(10))

    # Dispute tasks for the labelling sources only, with evidence matching the ingested calls.
    disputes = tasks_of(case, rpb.TASK_KIND_DISPUTE)
    assert sorted(d.source for d in disputes) == [t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_NOMOROBO]
    [registration] = tasks_of(case, rpb.TASK_KIND_REGISTRATION)
    assert registration.program == t.REGISTRATION_PROGRAM_FREE_CALLER_REGISTRY
    assert registration.prefill["business_name"] == "Acme Outbound LLC"
    evidence = api.GetEvidencePacket(rpb.GetEvidencePacketRequest(case_id=case.id, format=rpb.EVIDENCE_FORMAT_JSON))
    packet = evidence.packets[0]
    assert len(packet.calls_per_day) == 30
    seen = {d.date: (d.outbound_calls, d.answered_calls) for d in packet.calls_per_day if d.outbound_calls}
    assert seen == per_day
    assert packet.answer_rate == pytest.approx(12 / 40, abs=1e-3)
    assert packet.average_talk_time.ToTimedelta() == timedelta(seconds=75)
    assert packet.average_calls_per_day == pytest.approx(5 * 40 / 30, abs=0.01)
    assert packet.business_name == "Acme Outbound LLC" and packet.attestation == t.ATTESTATION_B
    assert len(packet.sample_call_times) == 10
    assert json.loads(evidence.content)["packets"][0]["total_outbound_calls"] == 200
    delivered(receiver, 2, stack.clock)  # both flags

    # After the rest the number warms up on the ramp; allocation enforces the first step's cap.
    stack.clock.advance(timedelta(days=14, minutes=1))
    saw_transition(api, case.id, "WARMING")
    warm = stack.number(FLAGGED)
    assert warm.state == t.LIFECYCLE_STATE_WARMING and list(warm.warmup_plan.daily_caps) == [20, 40, 60, 100]
    again = api.case_for(AGAIN)
    saw_transition(api, again.id, "WARMING")
    stack.observe(FLAGGED, t.REPUTATION_LABEL_CLEAN, t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_NOMOROBO)
    stack.observe(AGAIN, t.REPUTATION_LABEL_CLEAN, t.REPUTATION_SOURCE_TNS)
    saw_health(api, case.id, "Healthy")
    saw_health(api, again.id, "Healthy")
    wait_for(lambda: stack.allocate(solo) == FLAGGED, what="allocated again while warming")
    allocated = 1 + sum(stack.allocate(solo) == FLAGGED for _ in range(25))
    assert allocated == 20  # the warm-up's first daily cap

    # Flagged again mid-warm-up: that case escalates to a second, longer rest.
    stack.clock.advance(timedelta(days=5))
    stack.observe(AGAIN, t.REPUTATION_LABEL_SPAM, t.REPUTATION_SOURCE_TNS)
    escalated = api.wait_case(AGAIN, lambda c: c.cycle == 2 and c.stage == rpb.CASE_STAGE_RESTING, "escalated")
    saw_transition(api, again.id, "RESTING", times=2)
    rest_until = stack.number(AGAIN).rest_until.ToDatetime(tzinfo=UTC)
    assert abs(rest_until - (stack.clock.now() + timedelta(days=28))) < timedelta(minutes=1)
    assert escalated.state == rpb.CASE_STATE_OPEN

    # With clean observations, at the end of the warm-up the number is ACTIVE again and the case resolves.
    stack.clock.advance(timedelta(days=7, minutes=1))
    resolved = api.wait_case(FLAGGED, lambda c: c.state == rpb.CASE_STATE_RESOLVED, "resolved")
    assert stack.number(FLAGGED).state == t.LIFECYCLE_STATE_ACTIVE
    assert resolved.stage == rpb.CASE_STAGE_CLOSED

    delivered(receiver, 5, stack.clock)
    by_phone = defaultdict(list)
    for body in receiver.bodies():
        by_phone[body["phone_number"]].append(body["kind"])
    assert by_phone[FLAGGED] == ["NUMBER_FLAGGED", "CASE_RESOLVED"]
    assert by_phone[AGAIN] == ["NUMBER_FLAGGED", "NUMBER_FLAGGED", "CASE_ESCALATED"]
    secret = subscription.signing_secret
    keys = defaultdict(int)
    for headers, body in receiver.attempts:
        assert verify(secret, body, headers["X-Nhm-Signature"])
        keys[headers["Idempotency-Key"]] += 1
    assert sorted(keys.values()) == [2] * 5  # every alert failed once, then arrived once


def test_a_number_still_labelled_past_the_limit_is_retired(stack):
    api = stack.remediation
    stack.setup(FLAGGED, BACKUP, SPARE1, SPARE2)
    api.UpdateRemediationPolicy(rpb.UpdateRemediationPolicyRequest(
        policy=rpb.RemediationPolicy(max_labelled_duration=to_duration(timedelta(days=10)), auto_retire=True),
        update_mask=field_mask_pb2.FieldMask(paths=["max_labelled_duration", "auto_retire"])))
    wait_for(lambda: stack.scored(FLAGGED), what="scoring knows the number")
    stack.observe(FLAGGED, t.REPUTATION_LABEL_SCAM, t.REPUTATION_SOURCE_FIRST_ORION)
    case = api.wait_case(FLAGGED, lambda c: c.stage == rpb.CASE_STAGE_RESTING, "resting")
    saw_transition(api, case.id, "RESTING")
    stack.clock.advance(timedelta(days=9))
    stack.observe(FLAGGED, t.REPUTATION_LABEL_SCAM, t.REPUTATION_SOURCE_FIRST_ORION)  # still labelled
    stack.clock.advance(timedelta(days=1, minutes=1))
    retired = api.wait_case(FLAGGED, lambda c: c.state == rpb.CASE_STATE_RETIRED, "retired")
    assert retired.recommendation.startswith("retire: still labelled after 10 days")
    wait_for(lambda: stack.number(FLAGGED).state == t.LIFECYCLE_STATE_RETIRED, what="number retired")
    assert [m.to_state for m in stack.transitions(FLAGGED)][-1] == t.LIFECYCLE_STATE_RETIRED
