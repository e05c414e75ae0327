"""gRPC edge of the allocation service: proto <-> domain only."""

from __future__ import annotations

from datetime import datetime

import grpc

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm_allocation.allocator import (
    Allocation,
    AllocationRequest,
    Allocator,
    NothingEligible,
    ProspectRestricted,
)
from nhm_allocation.capacity import AreaCapacity, Plan
from nhm_allocation.decision import Refusal
from nhm_allocation.enums import Reason
from nhm_allocation.replication import Replication
from nhm_allocation.reports import Reports
from nhm_allocation.usage_report import UsageReport
from nhm_platform.auth import current_principal
from nhm_platform.errors import FailedPrecondition, ResourceExhausted
from nhm_platform.idempotency import fingerprint
from nhm_platform.pagination import decode_page_token, encode_page_token, filter_fingerprint, page_size
from nhm_platform.protoconv import to_duration, to_timestamp

pb = allocation_pb2


def _timestamp(message: object, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(to_timestamp(value))


def usage_to_proto(usage: UsageReport) -> pb.NumberUsage:
    message = pb.NumberUsage(phone_number=usage.phone_number, calls_today=usage.calls_today,
                             daily_cap=usage.daily_cap, calls_this_hour=usage.calls_this_hour,
                             hourly_cap=usage.hourly_cap)
    _timestamp(message, "last_allocate_time", usage.last_allocate_time)
    return message


def _exclusions(counts: dict[Reason, int]) -> list[pb.Exclusion]:
    return [pb.Exclusion(reason=int(reason), count=count) for reason, count in sorted(counts.items()) if count]


def allocation_to_proto(allocation: Allocation) -> pb.AllocateNumberResponse:
    decision = allocation.decision
    message = pb.AllocateNumberResponse(
        call_id=allocation.call_id, caller_id=allocation.caller_id, display_name=allocation.display_name,
        tier=int(allocation.tier), usage=usage_to_proto(allocation.usage),
        decision=pb.Decision(candidates_considered=decision.considered, exclusions=_exclusions(decision.exclusions),
                             sticky=decision.sticky, explanation=decision.explanation))
    _timestamp(message, "allocate_time", allocation.allocate_time)
    if allocation.staleness is not None:
        message.eligibility_staleness.CopyFrom(to_duration(allocation.staleness))
    return message


def refusal_error(campaign_id: str, refusal: Refusal) -> ResourceExhausted:
    detail = pb.AllocationRefusal(campaign_id=campaign_id, candidates_considered=refusal.considered,
                                  exclusions=_exclusions(refusal.exclusions))
    _timestamp(detail, "retry_time", refusal.retry_time)
    reasons = ", ".join(f"{count} {reason.name.lower().replace('_', ' ')}"
                        for reason, count in sorted(refusal.exclusions.items(), key=lambda item: -item[1]))
    if refusal.considered:
        text = f"no number of campaign {campaign_id!r} may place this call: {refusal.considered} considered ({reasons})"
    else:
        text = f"campaign {campaign_id!r} has no numbers to place calls from"
    if refusal.retry_time is not None:
        text += f"; capped numbers free up at {refusal.retry_time.isoformat()}"
    return ResourceExhausted(text, reason="NOTHING_ELIGIBLE", details=[detail])


def restriction_error(error: ProspectRestricted) -> FailedPrecondition:
    restriction = error.restriction
    detail = pb.CallingRestriction(reason=int(restriction.reason), time_zone=restriction.time_zone)
    _timestamp(detail, "allowed_time", restriction.allowed_time)
    words = {1: "outside the calling window in the prospect's local time",
             2: "the prospect has reached the calls allowed per 24 hours",
             3: "the prospect has reached the calls allowed per 7 days"}[int(restriction.reason)]
    return FailedPrecondition(
        f"the prospect may not be called now: {words} ({restriction.time_zone}); allowed again at "
        f"{restriction.allowed_time.isoformat()}", reason=restriction.reason.name, details=[detail])


def _area_to_proto(area: AreaCapacity) -> pb.AreaCodeCapacity:
    return pb.AreaCodeCapacity(
        area_code=area.area_code, region=area.region, numbers_total=area.total, numbers_eligible=area.eligible,
        numbers_resting=area.resting, numbers_warming=area.warming, numbers_unhealthy=area.unhealthy,
        daily_capacity=area.daily_capacity, expected_daily_calls=area.expected_daily_calls,
        numbers_needed=area.needed)


def plan_to_proto(campaign_id: str, plan: Plan) -> pb.CapacityPlan:
    return pb.CapacityPlan(campaign_id=campaign_id, area_codes=[_area_to_proto(a) for a in plan.areas],
                           total=_area_to_proto(plan.total), resting_buffer=plan.resting_buffer,
                           short_of_numbers=plan.short_of_numbers)


class AllocationServiceServicer(allocation_pb2_grpc.AllocationServiceServicer):
    def __init__(self, allocator: Allocator, reports: Reports, replication: Replication) -> None:
        self._allocator, self._reports, self._replication = allocator, reports, replication

    def AllocateNumber(self, request: pb.AllocateNumberRequest,
                       context: grpc.ServicerContext) -> pb.AllocateNumberResponse:
        principal = current_principal()
        principal.require_write()
        tenant_id = principal.tenant_for()
        domain_request = AllocationRequest(request.campaign_id, request.destination, request.call_id,
                                           int(request.destination_carrier))
        try:
            return self._allocator.allocate(
                tenant_id, domain_request, fingerprint=fingerprint(request, exclude=("call_id",)),
                respond=allocation_to_proto, parse=pb.AllocateNumberResponse.FromString)
        except NothingEligible as error:
            raise refusal_error(error.campaign_id, error.refusal) from None
        except ProspectRestricted as error:
            raise restriction_error(error) from None

    def ReleaseAllocation(self, request: pb.ReleaseAllocationRequest,
                          context: grpc.ServicerContext) -> pb.ReleaseAllocationResponse:
        principal = current_principal()
        principal.require_write()
        return self._allocator.release(
            principal.tenant_for(), request.call_id, request_id=request.request_id,
            fingerprint=fingerprint(request),
            respond=lambda released, usage: pb.ReleaseAllocationResponse(released=released,
                                                                         usage=usage_to_proto(usage)),
            parse=pb.ReleaseAllocationResponse.FromString)

    def GetNumberUsage(self, request: pb.GetNumberUsageRequest,
                       context: grpc.ServicerContext) -> pb.GetNumberUsageResponse:
        tenant_id = current_principal().tenant_for()
        usage = self._reports.number_usage(tenant_id, request.phone_number, request.campaign_id)
        return pb.GetNumberUsageResponse(usage=usage_to_proto(usage))

    def BatchGetNumberUsage(self, request: pb.BatchGetNumberUsageRequest,
                            context: grpc.ServicerContext) -> pb.BatchGetNumberUsageResponse:
        tenant_id = current_principal().tenant_for()
        result = self._reports.batch_number_usage(tenant_id, request.phone_numbers, request.campaign_id)
        return pb.BatchGetNumberUsageResponse(usage=[usage_to_proto(u) for u in result.found],
                                              not_found_phone_numbers=result.not_found)

    def GetCampaignUsage(self, request: pb.GetCampaignUsageRequest,
                         context: grpc.ServicerContext) -> pb.GetCampaignUsageResponse:
        tenant_id = current_principal().tenant_for()
        size = page_size(request.page_size)
        token_filter = filter_fingerprint("campaign_usage", request.campaign_id)
        last = decode_page_token(request.page_token, token_filter)
        after = str(last[0]) if last else None
        # Tokens carry the first page's totals, so later pages need not recount every member.
        totals = (int(last[1]), int(last[2])) if last and len(last) == 3 else None
        usage = self._reports.campaign_usage(tenant_id, request.campaign_id, after, size, totals)
        next_token = encode_page_token([usage.next_after, usage.calls_today, usage.capacity_today], token_filter)
        return pb.GetCampaignUsageResponse(
            campaign_id=usage.campaign_id, calls_today=usage.calls_today, capacity_today=usage.capacity_today,
            numbers=[usage_to_proto(u) for u in usage.numbers],
            next_page_token=next_token if usage.next_after else "")

    def GetCapacityPlan(self, request: pb.GetCapacityPlanRequest,
                        context: grpc.ServicerContext) -> pb.GetCapacityPlanResponse:
        tenant_id = current_principal().tenant_for()
        buffer = request.resting_buffer if request.HasField("resting_buffer") else None
        plan = self._reports.capacity_plan(tenant_id, request.campaign_id, request.expected_daily_calls, buffer)
        return pb.GetCapacityPlanResponse(plan=plan_to_proto(request.campaign_id, plan))

    def GetReplicationStatus(self, request: pb.GetReplicationStatusRequest,
                             context: grpc.ServicerContext) -> pb.GetReplicationStatusResponse:
        current_principal()
        feeds = []
        for state in self._replication.states():
            feed = pb.FeedStatus(upstream=state.upstream, revision=state.revision, connected=state.connected)
            _timestamp(feed, "last_sync_time", state.last_sync_time)
            if state.staleness is not None:
                feed.staleness.CopyFrom(to_duration(state.staleness))
            feeds.append(feed)
        return pb.GetReplicationStatusResponse(feeds=feeds)
