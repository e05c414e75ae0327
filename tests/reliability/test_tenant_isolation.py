"""Tenant isolation across the four services, every RPC: tenant B's key cannot read, list, watch, change or
allocate tenant A's resources; admin-only calls refuse tenant keys; a revoked key stops; no key reaches a log.

The services run wired as in production (scoring, allocation and remediation follow the registry's feed).
Tenant A (acme) gets a campaign, numbers, an allocation, call outcomes, a case with tasks, an alert subscription
and an API key. Then every RPC is called with tenant B's (globex) key, naming A's resources where the request
has room for them. Each reply must be the expected refusal (NOT_FOUND: another tenant's object is
indistinguishable from a missing one), and no reply, stream message or error may carry any of A's identifiers.
Every row of A in the four databases (the rows whose tenant_id is A's) is the same before and after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from nhm.allocation.v1 import allocation_pb2 as apb
from nhm.allocation.v1 import allocation_pb2_grpc
from nhm.audit.v1 import audit_pb2 as upb
from nhm.audit.v1 import audit_pb2_grpc
from nhm.registry.v1 import registry_pb2 as rpb
from nhm.registry.v1 import registry_pb2_grpc
from nhm.remediation.v1 import remediation_pb2 as mpb
from nhm.remediation.v1 import remediation_pb2_grpc
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.scoring.v1 import scoring_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_platform.clock import FakeClock
from nhm_testing.databases import owner_url
from nhm_testing.keys import ADMIN_KEY, SERVICE_KEY, TENANT_A, TENANT_A_KEY, TENANT_B_KEY, auth
from nhm_testing.services import ServiceHandle, running_service

NOON_PT = dt.datetime(2026, 1, 6, 20, 0, tzinfo=dt.UTC)
NUMBERS = ["+14152220123", "+14152220124"]
PROSPECT = "+12122345678"
A, B = auth(TENANT_A_KEY), auth(TENANT_B_KEY)


@dataclass
class Stubs:
    registry: registry_pb2_grpc.RegistryServiceStub
    scoring: scoring_pb2_grpc.ScoringServiceStub
    allocation: allocation_pb2_grpc.AllocationServiceStub
    remediation: remediation_pb2_grpc.RemediationServiceStub
    # nhm.audit.v1 on the services that keep an audit trail, by service.
    audit: dict[str, audit_pb2_grpc.AuditServiceStub]


@dataclass
class Seeded:
    """Tenant A's objects, and the strings that would betray them in a reply to B."""

    campaign_id: str
    call_id: str
    case_id: str
    task_id: str
    subscription_id: str
    key_id: str

    def secrets(self) -> list[str]:
        return [*NUMBERS, self.campaign_id, self.call_id, self.case_id, self.task_id, self.subscription_id,
                self.key_id, TENANT_A]


@dataclass
class Platform:
    stubs: Stubs
    urls: list[str]
    seeded: Seeded
    handles: dict[str, ServiceHandle]
    recorder: RequestRecorder


class RequestRecorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                      grpc.StreamUnaryClientInterceptor):
    """Keeps the text of the requests sent since the last take(): an identifier the caller named itself may
    come back in the reply ("campaign X not found") without leaking anything."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def take(self) -> str:
        sent, self.sent = self.sent, []
        return "\n".join(sent)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.sent.append(str(request))
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.sent.append(str(request))
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        items = list(requests)
        self.sent += [str(item) for item in items]
        return continuation(details, iter(items))


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(grpc.RpcError):
            value = condition()
            if value:
                return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest, sqlite_provisioner: Any, postgres_provisioner: Any) -> Iterator[Platform]:
    from nhm_allocation.app import SPEC as ALLOCATION
    from nhm_registry.app import SPEC as REGISTRY
    from nhm_remediation.app import SPEC as REMEDIATION
    from nhm_scoring.app import SPEC as SCORING

    if request.param == "postgresql" and postgres_provisioner is None:
        pytest.skip("PostgreSQL run needs NHM_TEST_POSTGRES_URL (a postgresql+psycopg:// URL); CI sets it")
    provisioner = sqlite_provisioner if request.param == "sqlite" else postgres_provisioner
    clock = FakeClock()
    clock.set(NOON_PT)
    fast = {"watch_poll_interval": 0.02, "watch_heartbeat_interval": 0.2}
    with contextlib.ExitStack() as stack:
        urls: list[str] = []

        def start(spec: Any, **overrides: Any) -> ServiceHandle:
            urls.append(provisioner.fresh(spec))
            return stack.enter_context(running_service(spec, urls[-1], clock, **overrides))

        registry = start(REGISTRY, **fast)
        scoring = start(SCORING, registry_target=registry.address, rescore_interval=3600.0, **fast)
        allocation = start(ALLOCATION, registry_target=registry.address, scoring_target=scoring.address)
        remediation = start(REMEDIATION, registry_target=registry.address, scoring_target=scoring.address,
                            allocation_target=allocation.address, scheduler_interval=3600.0, **fast)
        recorder = RequestRecorder()
        channels = [grpc.intercept_channel(stack.enter_context(h.channel()), recorder)
                    for h in (registry, scoring, allocation, remediation)]
        stubs = Stubs(registry_pb2_grpc.RegistryServiceStub(channels[0]), scoring_pb2_grpc.ScoringServiceStub(
            channels[1]), allocation_pb2_grpc.AllocationServiceStub(channels[2]),
            remediation_pb2_grpc.RemediationServiceStub(channels[3]),
            {name: audit_pb2_grpc.AuditServiceStub(channels[i])
             for i, name in ((0, "registry"), (1, "scoring"), (3, "remediation"))})
        seeded = seed(stubs)
        handles = {"registry": registry, "scoring": scoring, "allocation": allocation, "remediation": remediation}
        yield Platform(stubs, urls, seeded, handles, recorder)


def seed(s: Stubs) -> Seeded:
    campaign = s.registry.CreateCampaign(rpb.CreateCampaignRequest(campaign=rpb.Campaign(name="A's campaign")),
                                         metadata=A).campaign
    for phone in NUMBERS:
        s.registry.CreateNumber(rpb.CreateNumberRequest(number=rpb.NumberSpec(
            phone_number=phone, campaign_ids=[campaign.id])), metadata=A)
    wait_until(lambda: len(s.allocation.GetCampaignUsage(apb.GetCampaignUsageRequest(campaign_id=campaign.id),
                                                         metadata=A).numbers) == 2, "allocation to learn A's numbers")
    wait_until(lambda: s.scoring.GetHealth(spb.GetHealthRequest(phone_number=NUMBERS[0]), metadata=A),
               "scoring to learn A's numbers")
    s.allocation.AllocateNumber(apb.AllocateNumberRequest(campaign_id=campaign.id, destination=PROSPECT,
                                                          call_id="a-call-1"), metadata=A)
    outcome = spb.CallOutcome(event_id="a-event-1", phone_number=NUMBERS[0], remote_number=PROSPECT,
                              start_time=Timestamp(seconds=int(NOON_PT.timestamp()) - 60), answered=True,
                              call_id="a-call-1")
    s.scoring.ReportCallOutcomes(spb.ReportCallOutcomesRequest(outcomes=[outcome]), metadata=A)
    case = wait_until(lambda: s.remediation.OpenCase(mpb.OpenCaseRequest(
        phone_number=NUMBERS[1], reason="isolation test", request_id="a-open-1"), metadata=A).case,
        "remediation to learn A's numbers")
    task = s.remediation.ListTasks(mpb.ListTasksRequest(), metadata=A).tasks[0]
    subscription = s.remediation.CreateAlertSubscription(mpb.CreateAlertSubscriptionRequest(
        subscription=mpb.AlertSubscription(channel=mpb.ALERT_CHANNEL_WEBHOOK, target="https://a.example/hook")),
        metadata=A).subscription
    key = s.registry.CreateApiKey(rpb.CreateApiKeyRequest(name="A's key", role=rpb.API_KEY_ROLE_TENANT),
                                  metadata=A).api_key
    return Seeded(campaign.id, "a-call-1", case.id, task.id, subscription.id, key.id)


def rows_of(urls: list[str], tenant: str) -> dict[str, str]:
    """Every row whose tenant_id is the tenant's, in every table of every service's database: a hash a table."""
    hashes: dict[str, str] = {}
    for index, url in enumerate(urls):
        engine = create_engine(owner_url(url), poolclass=NullPool)
        with engine.connect() as connection:
            inspector = inspect(connection)
            for table in sorted(inspector.get_table_names()):
                if "tenant_id" not in {c["name"] for c in inspector.get_columns(table)}:
                    continue
                rows = connection.execute(text(f'SELECT * FROM "{table}" WHERE tenant_id = :t'),  # noqa: S608
                                          {"t": tenant}).all()
                hasher = hashlib.sha256()
                for row in sorted(repr(tuple(row)) for row in rows):
                    hasher.update(row.encode())
                hashes[f"{index}:{table}"] = hasher.hexdigest()
        engine.dispose()
    return hashes


def settled_rows_of(urls: list[str], tenant: str) -> dict[str, str]:
    """rows_of once the background work of earlier calls (feeds applied) has stopped changing them."""
    last = rows_of(urls, tenant)
    for _ in range(50):
        time.sleep(0.2)
        now = rows_of(urls, tenant)
        if now == last:
            return now
        last = now
    raise AssertionError("the tenant's rows never stopped changing")


def calls(s: Stubs, a: Seeded) -> dict[str, tuple[Callable[[], Any], set[grpc.StatusCode]]]:
    """Every RPC called with B's key on A's objects, and the codes it may answer with."""
    nf = {grpc.StatusCode.NOT_FOUND}
    own = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}  # B acting on its own data
    batch = {grpc.StatusCode.OK}  # a batch get answers, with all of A's numbers not found (see found_of_a)
    phone, other = NUMBERS[0], NUMBERS[1]
    start = Timestamp(seconds=int(NOON_PT.timestamp()) - 30)
    return {
        # registry
        "registry.CreateNumber": (lambda: s.registry.CreateNumber(rpb.CreateNumberRequest(number=rpb.NumberSpec(
            phone_number="+14152220777", campaign_ids=[a.campaign_id])), metadata=B),
            nf | {grpc.StatusCode.INVALID_ARGUMENT}),
        "registry.BatchCreateNumbers": (lambda: s.registry.BatchCreateNumbers(rpb.BatchCreateNumbersRequest(
            numbers=[rpb.NumberSpec(phone_number="+14152220778", campaign_ids=[a.campaign_id])]), metadata=B),
            nf | {grpc.StatusCode.INVALID_ARGUMENT}),
        "registry.GetNumber": (lambda: s.registry.GetNumber(rpb.GetNumberRequest(phone_number=phone), metadata=B), nf),
        "registry.BatchGetNumbers": (lambda: s.registry.BatchGetNumbers(rpb.BatchGetNumbersRequest(
            phone_numbers=NUMBERS), metadata=B), batch),
        "registry.ListNumbers": (lambda: s.registry.ListNumbers(rpb.ListNumbersRequest(campaign_id=a.campaign_id),
                                                                metadata=B), nf | {grpc.StatusCode.OK}),
        "registry.UpdateNumber": (lambda: s.registry.UpdateNumber(rpb.UpdateNumberRequest(
            number=rpb.Number(phone_number=phone, display_name="B WAS HERE"),
            update_mask=FieldMask(paths=["display_name"])), metadata=B), nf),
        "registry.RetireNumber": (lambda: s.registry.RetireNumber(rpb.RetireNumberRequest(phone_number=phone),
                                                                  metadata=B), nf),
        "registry.TransitionNumber": (lambda: s.registry.TransitionNumber(rpb.TransitionNumberRequest(
            phone_number=phone, target_state=types_pb2.LIFECYCLE_STATE_RESTING,
            rest_until=Timestamp(seconds=int(NOON_PT.timestamp()) + 86_400)),
            metadata=B), nf),
        "registry.ListNumberTransitions": (lambda: s.registry.ListNumberTransitions(
            rpb.ListNumberTransitionsRequest(phone_number=phone), metadata=B), nf),
        "registry.CreateCampaign": (lambda: s.registry.CreateCampaign(rpb.CreateCampaignRequest(
            campaign=rpb.Campaign(name="A's campaign")), metadata=B), own),
        "registry.GetCampaign": (lambda: s.registry.GetCampaign(rpb.GetCampaignRequest(campaign_id=a.campaign_id),
                                                                metadata=B), nf),
        "registry.ListCampaigns": (lambda: s.registry.ListCampaigns(rpb.ListCampaignsRequest(), metadata=B), own),
        "registry.UpdateCampaign": (lambda: s.registry.UpdateCampaign(rpb.UpdateCampaignRequest(
            campaign=rpb.Campaign(id=a.campaign_id, name="taken"), update_mask=FieldMask(paths=["name"])),
            metadata=B), nf),
        "registry.DeleteCampaign": (lambda: s.registry.DeleteCampaign(rpb.DeleteCampaignRequest(
            campaign_id=a.campaign_id), metadata=B), nf),
        "registry.AssignNumbers": (lambda: s.registry.AssignNumbers(rpb.AssignNumbersRequest(
            campaign_id=a.campaign_id, phone_numbers=[phone]), metadata=B), nf),
        "registry.UnassignNumbers": (lambda: s.registry.UnassignNumbers(rpb.UnassignNumbersRequest(
            campaign_id=a.campaign_id, phone_numbers=[phone]), metadata=B), nf),
        "registry.CreateTenant": (lambda: s.registry.CreateTenant(rpb.CreateTenantRequest(
            tenant=rpb.Tenant(id="b-made-this", display_name="x")), metadata=B), {grpc.StatusCode.PERMISSION_DENIED}),
        "registry.GetTenant": (lambda: s.registry.GetTenant(rpb.GetTenantRequest(tenant_id=TENANT_A), metadata=B), nf),
        "registry.UpdateTenant": (lambda: s.registry.UpdateTenant(rpb.UpdateTenantRequest(
            tenant=rpb.Tenant(id=TENANT_A, display_name="B owns you"), update_mask=FieldMask(paths=["display_name"])),
            metadata=B), nf),
        "registry.CreateApiKey": (lambda: s.registry.CreateApiKey(rpb.CreateApiKeyRequest(
            name="into A", role=rpb.API_KEY_ROLE_TENANT, tenant_id=TENANT_A), metadata=B), nf),
        "registry.ListApiKeys": (lambda: s.registry.ListApiKeys(rpb.ListApiKeysRequest(include_revoked=True),
                                                                metadata=B), own),
        "registry.RevokeApiKey": (lambda: s.registry.RevokeApiKey(rpb.RevokeApiKeyRequest(api_key_id=a.key_id),
                                                                  metadata=B), nf),
        "registry.WatchChanges": (lambda: first_messages(s.registry.WatchChanges(rpb.WatchChangesRequest(
            tenant_id=TENANT_A), metadata=B, timeout=5)), nf),
        "registry.WatchChanges(snapshot)": (lambda: first_messages(s.registry.WatchChanges(
            rpb.WatchChangesRequest(snapshot=True), metadata=B, timeout=5)), own),
        "registry.audit.ListAuditEvents": (lambda: s.audit["registry"].ListAuditEvents(upb.ListAuditEventsRequest(
            resource_name=f"campaigns/{a.campaign_id}"), metadata=B), own),
        "registry.audit.ListAuditEvents(all)": (lambda: s.audit["registry"].ListAuditEvents(
            upb.ListAuditEventsRequest(), metadata=B), own),
        # scoring
        "scoring.ReportCallOutcomes": (lambda: s.scoring.ReportCallOutcomes(spb.ReportCallOutcomesRequest(
            outcomes=[spb.CallOutcome(event_id="b-1", phone_number=phone, remote_number=PROSPECT, start_time=start,
                                      answered=False)]), metadata=B), own),
        "scoring.StreamCallOutcomes": (lambda: s.scoring.StreamCallOutcomes(iter([spb.StreamCallOutcomesRequest(
            outcomes=[spb.CallOutcome(event_id="b-2", phone_number=phone, remote_number=PROSPECT, start_time=start,
                                      answered=False)])]), metadata=B), own),
        "scoring.ReportComplaints": (lambda: s.scoring.ReportComplaints(spb.ReportComplaintsRequest(
            complaints=[spb.Complaint(event_id="b-3", phone_number=phone, report_time=start)]), metadata=B), own),
        "scoring.ReportReputationObservations": (lambda: s.scoring.ReportReputationObservations(
            spb.ReportReputationObservationsRequest(observations=[spb.ReputationObservation(
                event_id="b-4", phone_number=phone, source=1, label=3, observe_time=start)]), metadata=B), own),
        "scoring.ImportReputationCsv": (lambda: s.scoring.ImportReputationCsv(spb.ImportReputationCsvRequest(
            csv=f"phone_number,source,label,observe_time\n{phone},NOMOROBO,SPAM,2026-01-06T19:00:00Z\n".encode()),
            metadata=B), own),
        "scoring.GetHealth": (lambda: s.scoring.GetHealth(spb.GetHealthRequest(phone_number=phone), metadata=B), nf),
        "scoring.BatchGetHealth": (lambda: s.scoring.BatchGetHealth(spb.BatchGetHealthRequest(phone_numbers=NUMBERS),
                                                                    metadata=B), batch),
        "scoring.ListHealth": (lambda: s.scoring.ListHealth(spb.ListHealthRequest(campaign_id=a.campaign_id),
                                                            metadata=B), nf | {grpc.StatusCode.OK}),
        "scoring.ListHealthHistory": (lambda: s.scoring.ListHealthHistory(spb.ListHealthHistoryRequest(
            phone_number=phone), metadata=B), nf),
        "scoring.GetWeeklyReport": (lambda: s.scoring.GetWeeklyReport(spb.GetWeeklyReportRequest(), metadata=B), own),
        "scoring.GetCallActivity": (lambda: s.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=phone),
                                                                      metadata=B), nf),
        "scoring.GetScoringPolicy": (lambda: s.scoring.GetScoringPolicy(spb.GetScoringPolicyRequest(), metadata=B),
                                     own),
        "scoring.UpdateScoringPolicy": (lambda: s.scoring.UpdateScoringPolicy(spb.UpdateScoringPolicyRequest(
            policy=spb.ScoringPolicy(), update_mask=FieldMask(paths=["tenant_id"])), metadata=B), own),
        "scoring.WatchHealth": (lambda: first_messages(s.scoring.WatchHealth(spb.WatchHealthRequest(
            tenant_id=TENANT_A), metadata=B, timeout=5)), nf),
        "scoring.WatchHealth(snapshot)": (lambda: first_messages(s.scoring.WatchHealth(spb.WatchHealthRequest(
            snapshot=True), metadata=B, timeout=5)), own),
        "scoring.audit.ListAuditEvents": (lambda: s.audit["scoring"].ListAuditEvents(upb.ListAuditEventsRequest(
            actor=a.key_id), metadata=B), own),
        # allocation
        "allocation.AllocateNumber": (lambda: s.allocation.AllocateNumber(apb.AllocateNumberRequest(
            campaign_id=a.campaign_id, destination=PROSPECT, call_id="b-call-1"), metadata=B), nf),
        "allocation.ReleaseAllocation": (lambda: s.allocation.ReleaseAllocation(apb.ReleaseAllocationRequest(
            call_id=a.call_id), metadata=B), nf),
        "allocation.GetNumberUsage": (lambda: s.allocation.GetNumberUsage(apb.GetNumberUsageRequest(
            phone_number=phone, campaign_id=a.campaign_id), metadata=B), nf),
        "allocation.BatchGetNumberUsage": (lambda: s.allocation.BatchGetNumberUsage(apb.BatchGetNumberUsageRequest(
            phone_numbers=NUMBERS), metadata=B), batch),
        "allocation.BatchGetNumberUsage(campaign)": (lambda: s.allocation.BatchGetNumberUsage(
            apb.BatchGetNumberUsageRequest(phone_numbers=NUMBERS, campaign_id=a.campaign_id), metadata=B), nf),
        "allocation.GetCampaignUsage": (lambda: s.allocation.GetCampaignUsage(apb.GetCampaignUsageRequest(
            campaign_id=a.campaign_id), metadata=B), nf),
        "allocation.GetCapacityPlan": (lambda: s.allocation.GetCapacityPlan(apb.GetCapacityPlanRequest(
            campaign_id=a.campaign_id, expected_daily_calls=100), metadata=B), nf),
        "allocation.GetReplicationStatus": (lambda: s.allocation.GetReplicationStatus(
            apb.GetReplicationStatusRequest(), metadata=B), own),
        # remediation
        "remediation.OpenCase": (lambda: s.remediation.OpenCase(mpb.OpenCaseRequest(phone_number=phone, reason="x"),
                                                                metadata=B), nf),
        "remediation.GetCase": (lambda: s.remediation.GetCase(mpb.GetCaseRequest(case_id=a.case_id), metadata=B), nf),
        "remediation.ListCases": (lambda: s.remediation.ListCases(mpb.ListCasesRequest(phone_number=other),
                                                                  metadata=B), own),
        "remediation.ListTasks": (lambda: s.remediation.ListTasks(mpb.ListTasksRequest(), metadata=B), own),
        "remediation.UpdateTask": (lambda: s.remediation.UpdateTask(mpb.UpdateTaskRequest(
            task=mpb.Task(id=a.task_id, notes="B"), update_mask=FieldMask(paths=["notes"])), metadata=B),
            nf | {grpc.StatusCode.INVALID_ARGUMENT}),
        "remediation.AddCaseNote": (lambda: s.remediation.AddCaseNote(mpb.AddCaseNoteRequest(
            case_id=a.case_id, note="B was here"), metadata=B), nf),
        "remediation.CancelCase": (lambda: s.remediation.CancelCase(mpb.CancelCaseRequest(
            case_id=a.case_id, reason="B"), metadata=B), nf),
        "remediation.ListCaseEvents": (lambda: s.remediation.ListCaseEvents(mpb.ListCaseEventsRequest(
            case_id=a.case_id), metadata=B), nf),
        "remediation.GetEvidencePacket": (lambda: s.remediation.GetEvidencePacket(mpb.GetEvidencePacketRequest(
            case_id=a.case_id, task_id=a.task_id), metadata=B), nf),
        "remediation.CreateAlertSubscription": (lambda: s.remediation.CreateAlertSubscription(
            mpb.CreateAlertSubscriptionRequest(subscription=mpb.AlertSubscription(
                channel=mpb.ALERT_CHANNEL_WEBHOOK, target="https://b.example/hook")),
            metadata=B),
            own),
        "remediation.CreateAlertSubscription(A's campaign)": (lambda: s.remediation.CreateAlertSubscription(
            mpb.CreateAlertSubscriptionRequest(subscription=mpb.AlertSubscription(
                channel=mpb.ALERT_CHANNEL_WEBHOOK, target="https://b.example/hook", campaign_ids=[a.campaign_id])),
            metadata=B), {grpc.StatusCode.INVALID_ARGUMENT}),  # the answer for a campaign that does not exist
        "remediation.ListAlertSubscriptions": (lambda: s.remediation.ListAlertSubscriptions(
            mpb.ListAlertSubscriptionsRequest(), metadata=B), own),
        "remediation.DeleteAlertSubscription": (lambda: s.remediation.DeleteAlertSubscription(
            mpb.DeleteAlertSubscriptionRequest(subscription_id=a.subscription_id), metadata=B), nf),
        "remediation.ListAlertDeliveries": (lambda: s.remediation.ListAlertDeliveries(mpb.ListAlertDeliveriesRequest(
            subscription_id=a.subscription_id), metadata=B), nf | {grpc.StatusCode.OK}),
        "remediation.GetRemediationPolicy": (lambda: s.remediation.GetRemediationPolicy(
            mpb.GetRemediationPolicyRequest(), metadata=B), own),
        "remediation.UpdateRemediationPolicy": (lambda: s.remediation.UpdateRemediationPolicy(
            mpb.UpdateRemediationPolicyRequest(policy=mpb.RemediationPolicy(), update_mask=FieldMask(
                paths=["tenant_id"])), metadata=B), own),
        "remediation.WatchCases": (lambda: first_messages(s.remediation.WatchCases(mpb.WatchCasesRequest(
            tenant_id=TENANT_A), metadata=B, timeout=5)), nf),
        "remediation.WatchCases(snapshot)": (lambda: first_messages(s.remediation.WatchCases(mpb.WatchCasesRequest(
            snapshot=True), metadata=B, timeout=5)), own),
        "remediation.audit.ListAuditEvents": (lambda: s.audit["remediation"].ListAuditEvents(
            upb.ListAuditEventsRequest(resource_name=f"cases/{a.case_id}", oldest_first=True), metadata=B), own),
    }


def first_messages(stream: Any, count: int = 5) -> list[Any]:
    """A Watch stream's first messages (B's own snapshot and heartbeats), then cancelled."""
    messages = []
    for message in stream:
        messages.append(message)
        if len(messages) >= count or getattr(message, "heartbeat", False):
            break
    stream.cancel()
    return messages


def every_rpc() -> set[str]:
    names = set()
    for module, service in ((rpb, "RegistryService"), (spb, "ScoringService"), (apb, "AllocationService"),
                            (mpb, "RemediationService")):
        prefix = service.removesuffix("Service").lower()
        names |= {f"{prefix}.{m.name}" for m in module.DESCRIPTOR.services_by_name[service].methods}
    for prefix in ("registry", "scoring", "remediation"):  # they serve nhm.audit.v1 too
        names |= {f"{prefix}.audit.{m.name}" for m in upb.DESCRIPTOR.services_by_name["AuditService"].methods}
    return names


def found_of_a(reply: Any) -> list[Any]:
    """What a batch get's reply found (every repeated field but not_found_phone_numbers): for B, nothing. A's
    numbers are not found, as unknown ones are, even where the items carry nothing else that names A."""
    descriptor = getattr(reply, "DESCRIPTOR", None)
    if descriptor is None or "not_found_phone_numbers" not in descriptor.fields_by_name:
        return []
    return [item for f in descriptor.fields if f.is_repeated and f.name != "not_found_phone_numbers"
            for item in getattr(reply, f.name)]


def isolation_problems(platform: Platform, only: Callable[[str], bool] = lambda name: True) -> list[str]:
    """Every RPC with B's key on A's objects: the replies that are not the expected refusal or that name A."""
    s, a = platform.stubs, platform.seeded
    problems = []
    for name, (call, allowed) in calls(s, a).items():
        if not only(name):
            continue
        platform.recorder.take()
        try:
            reply = call()
            code, shown = grpc.StatusCode.OK, repr(reply)
        except grpc.RpcError as error:
            code, shown = error.code(), f"{error.details()} {error.trailing_metadata()}"
        if code not in allowed:
            problems.append(f"{name}: {code.name} ({shown[:200]}), expected {sorted(c.name for c in allowed)}")
        elif code is grpc.StatusCode.OK and found_of_a(reply):
            problems.append(f"{name}: found A's numbers, which B must not tell from unknown ones: {shown[:300]}")
        named = platform.recorder.take()
        leaked = [secret for secret in a.secrets() if secret in shown and secret not in named]
        if leaked:
            problems.append(f"{name}: the reply names A's {leaked}: {shown[:300]}")
    return problems


def test_another_tenants_key_reaches_none_of_its_objects_through_any_rpc(platform: Platform,
                                                                         capfd: pytest.CaptureFixture[str]) -> None:
    assert {name.split("(")[0] for name in calls(platform.stubs, platform.seeded)} == every_rpc(), (
        "a new RPC needs its isolation case here")
    before = settled_rows_of(platform.urls, TENANT_A)
    problems = isolation_problems(platform)
    assert not problems, "\n".join(problems)
    after = settled_rows_of(platform.urls, TENANT_A)  # including what B's calls set off through the feeds
    assert after == before, f"B's calls changed A's rows in {[t for t in after if after[t] != before.get(t)]}"
    logs = capfd.readouterr()
    for secret in (TENANT_A_KEY, TENANT_B_KEY):
        assert secret not in logs.out + logs.err


def test_admin_only_calls_refuse_tenant_keys_and_platform_keys_need_a_tenant(platform: Platform) -> None:
    s = platform.stubs
    for key in (TENANT_A_KEY, TENANT_B_KEY):
        with pytest.raises(grpc.RpcError) as refused:
            s.registry.CreateTenant(rpb.CreateTenantRequest(tenant=rpb.Tenant(id="made-by-tenant", display_name="x")),
                                    metadata=auth(key))
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as refused:
        s.registry.CreateTenant(rpb.CreateTenantRequest(tenant=rpb.Tenant(id="made-by-service", display_name="x")),
                                metadata=auth(SERVICE_KEY))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_a_revoked_key_stops_everywhere_and_no_key_reaches_a_log(platform: Platform,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    s = platform.stubs
    created = s.registry.CreateApiKey(rpb.CreateApiKeyRequest(name="short-lived", role=rpb.API_KEY_ROLE_TENANT),
                                      metadata=A)
    secret = created.secret
    key = auth(secret)
    probes = {
        "registry": lambda: s.registry.ListCampaigns(rpb.ListCampaignsRequest(), metadata=key),
        "scoring": lambda: s.scoring.GetScoringPolicy(spb.GetScoringPolicyRequest(), metadata=key),
        "allocation": lambda: s.allocation.GetReplicationStatus(apb.GetReplicationStatusRequest(), metadata=key),
        "remediation": lambda: s.remediation.GetRemediationPolicy(mpb.GetRemediationPolicyRequest(), metadata=key),
    }
    for name, probe in probes.items():
        wait_until(probe, f"the new key to work on {name}")
    s.registry.RevokeApiKey(rpb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=A)
    revoked_at = time.monotonic()
    stopped_after: dict[str, float] = {}
    while len(stopped_after) < len(probes) and time.monotonic() - revoked_at < 10:
        for name, probe in probes.items():
            if name in stopped_after:
                continue
            try:
                probe()
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.UNAUTHENTICATED
                stopped_after[name] = time.monotonic() - revoked_at
        time.sleep(0.005)
    assert set(stopped_after) == set(probes), f"still accepted after 10 s by {set(probes) - set(stopped_after)}"
    assert stopped_after["registry"] < 0.5  # the first call after the revocation is refused
    with pytest.raises(grpc.RpcError):  # an attacker's made-up key: refused, and not logged either
        s.scoring.GetScoringPolicy(spb.GetScoringPolicyRequest(), metadata=auth("nhm_attacker_guess_0123456789"))
    logs = capfd.readouterr()
    for value in (secret, TENANT_A_KEY, ADMIN_KEY, SERVICE_KEY, "nhm_attacker_guess_0123456789"):
        assert value not in logs.out + logs.err, "a key reached the logs"
    assert "UNAUTHENTICATED" in logs.out + logs.err  # the logs were captured: the refusals are there
    with capfd.disabled():
        print(f"\nrevoked key refused after (s): {', '.join(f'{n} {t:.3f}' for n, t in stopped_after.items())}")


def test_a_service_letting_a_tenant_name_another_is_caught_and_row_level_security_holds_it(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately broken variant: a tenant key may act for any tenant it names. On SQLite the check must see
    it. On PostgreSQL the same variant gets past every service's own check, and row-level security (the
    transaction's tenant is the key's, not the one it names) is the second wall: B reads none of A's objects,
    writes none of A's rows, and its writes into A are refused."""
    from nhm_platform.auth import Principal

    on_postgres = platform.urls[0].startswith("postgresql")
    before = settled_rows_of(platform.urls, TENANT_A) if on_postgres else {}
    monkeypatch.setattr(Principal, "tenant_for", lambda self, requested="", field="tenant_id":
                        requested or self.tenant_id)
    problems = isolation_problems(platform)
    if not on_postgres:
        caught = {problem.split(":")[0] for problem in problems}
        assert {"registry.GetTenant", "registry.CreateApiKey", "registry.WatchChanges"} <= caught, problems
        return
    leaks = [problem for problem in problems if "the reply names A's" in problem]
    assert not leaks, "\n".join(leaks)
    refused = {problem.split(":")[0]: problem for problem in problems}
    by_row_security = sorted(name for name, problem in refused.items() if "row-level security refused" in problem)
    assert "registry.CreateApiKey" in by_row_security, problems  # the variant is in effect: the service let it by
    after = settled_rows_of(platform.urls, TENANT_A)
    assert after == before, f"B changed A's rows in {[t for t in after if after[t] != before.get(t)]}"
    print(f"\nbroken variant on PostgreSQL: {len(problems)} replies differ from NOT_FOUND, 0 leaks, 0 of A's rows"
          f" changed; writes refused by row-level security: {by_row_security}; the rest answered NOT_FOUND or"
          " streamed heartbeats only")


def test_the_isolation_check_catches_a_batch_get_that_reads_another_tenants_numbers(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately broken variant: every key reads as tenant A. Only the reads run (the writes would harm A).
    On PostgreSQL row-level security still holds B's reads to B's rows: nothing of A's comes back."""
    from nhm_platform.auth import Principal

    monkeypatch.setattr(Principal, "tenant_for", lambda self, requested="", field="tenant_id": TENANT_A)
    problems = isolation_problems(platform, only=lambda name: ".BatchGet" in name and "(" not in name)
    caught = {problem.split(":")[0] for problem in problems}
    if platform.urls[0].startswith("postgresql"):
        assert caught == set(), problems
        return
    assert caught == {"registry.BatchGetNumbers", "scoring.BatchGetHealth", "allocation.BatchGetNumberUsage"}, problems
