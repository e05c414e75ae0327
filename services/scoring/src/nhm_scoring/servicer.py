"""gRPC edge of the scoring service: proto <-> domain only. Every call acts for the caller's tenant."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta

import grpc
from google.protobuf import duration_pb2

from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm_platform.auth import current_principal
from nhm_platform.errors import InvalidArgument
from nhm_platform.fieldmask import checked_paths
from nhm_platform.idempotency import fingerprint
from nhm_platform.protoconv import from_timestamp, optional_timestamp, to_duration, to_timestamp
from nhm_scoring.events import CallOutcome, Complaint, IngestSummary, Observation
from nhm_scoring.health_feed import HealthFeed
from nhm_scoring.health_store import HistoryRow
from nhm_scoring.ingestion import Ingestion
from nhm_scoring.messages import policy_changes, policy_message
from nhm_scoring.policies import Policies
from nhm_scoring.policy import FIELDS
from nhm_scoring.reading import ListQuery, Reading
from nhm_scoring.reputation import HealthStatus
from nhm_scoring.weekly_report import WeeklyReport, WeeklyReports


def _write_tenant() -> str:
    principal = current_principal()
    principal.require_write()
    return principal.tenant_for()


def _read_tenant() -> str:
    return current_principal().tenant_for()


def _check_size(count: int, limit: int, field: str) -> None:
    if count > limit:
        raise InvalidArgument.for_field(field, f"at most {limit} events per request; split the batch",
                                        reason="BATCH_TOO_LARGE")


def call_outcome(m: scoring_pb2.CallOutcome) -> CallOutcome:
    talk = m.talk_duration
    return CallOutcome(m.event_id, m.phone_number, int(m.direction), m.remote_number,
                       optional_timestamp(m, "start_time"), m.answered, talk.seconds * 1000 + talk.nanos // 1_000_000,
                       m.sip_code, int(m.disposition), m.campaign_id, m.call_id)


def complaint(m: scoring_pb2.Complaint) -> Complaint:
    return Complaint(m.event_id, m.phone_number, int(m.kind), m.remote_number, optional_timestamp(m, "report_time"),
                     m.source, m.detail)


def observation(m: scoring_pb2.ReputationObservation) -> Observation:
    return Observation(m.event_id, m.phone_number, int(m.source), int(m.label), m.raw_label,
                       m.score if m.HasField("score") else None, optional_timestamp(m, "observe_time"))


def summary_message(summary: IngestSummary) -> scoring_pb2.IngestSummary:
    message = scoring_pb2.IngestSummary(accepted=summary.accepted, duplicates=summary.duplicates,
                                        rejected=summary.rejected)
    for r in summary.rejections:
        message.rejections.add(index=r.index, event_id=r.event_id, result=scoring_pb2.EVENT_RESULT_REJECTED,
                               reason=r.reason, field=r.field)
    return message


def counts_message(counts: dict[HealthStatus, int]) -> scoring_pb2.StatusCounts:
    get = counts.get
    healthy, at_risk = get(HealthStatus.HEALTHY, 0), get(HealthStatus.AT_RISK, 0)
    flagged, blocked = get(HealthStatus.FLAGGED, 0), get(HealthStatus.BLOCKED, 0)
    return scoring_pb2.StatusCounts(healthy=healthy, at_risk=at_risk, flagged=flagged, blocked=blocked,
                                    total=healthy + at_risk + flagged + blocked)


def transition_message(row: HistoryRow, from_status: HealthStatus | None = None) -> scoring_pb2.HealthTransition:
    return scoring_pb2.HealthTransition(
        phone_number=row.phone_number, from_status=int(row.from_status if from_status is None else from_status),
        to_status=int(row.to_status), score=row.score, cause=row.cause, factors=list(row.factors),
        sources=list(row.sources), transition_time=to_timestamp(row.transition_time))


def report_message(report: WeeklyReport) -> scoring_pb2.WeeklyReport:
    message = scoring_pb2.WeeklyReport(
        tenant_id=report.tenant_id, period_start=to_timestamp(report.period_start),
        period_end=to_timestamp(report.period_end), counts_now=counts_message(report.counts_now),
        counts_week_ago=counts_message(report.counts_week_ago),
        changed=[transition_message(c.now, c.from_status) for c in report.changed],
        newly_at_risk=report.newly_at_risk, answer_rate_flagged=report.answer_rate_flagged,
        answer_rate_clean=report.answer_rate_clean, outbound_calls=report.outbound_calls)
    for cause in report.top_causes:
        message.top_causes.add(factor=cause.factor.value if cause.factor else 0,
                               source=int(cause.source) if cause.source else 0, description=cause.description,
                               numbers=cause.numbers)
    for share in report.flagged_call_share:
        message.flagged_call_share.add(carrier=int(share.carrier), calls=share.calls,
                                       calls_from_flagged=share.calls_from_flagged, share=share.share)
    return message


class ScoringServiceServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, *, ingestion: Ingestion, reading: Reading, reports: WeeklyReports, policies: Policies,
                 health_feed: HealthFeed, max_batch_events: int) -> None:
        self._ingestion, self._reading, self._reports = ingestion, reading, reports
        self._policies, self._feed, self._max_batch = policies, health_feed, max_batch_events

    # --- Ingestion ---

    def ReportCallOutcomes(self, request: scoring_pb2.ReportCallOutcomesRequest,
                           context: grpc.ServicerContext) -> scoring_pb2.ReportCallOutcomesResponse:
        tenant = _write_tenant()
        _check_size(len(request.outcomes), self._max_batch, "outcomes")
        summary = self._ingestion.report_calls(tenant, [call_outcome(m) for m in request.outcomes])
        return scoring_pb2.ReportCallOutcomesResponse(summary=summary_message(summary))

    def StreamCallOutcomes(self, request_iterator: Iterable[scoring_pb2.StreamCallOutcomesRequest],
                           context: grpc.ServicerContext) -> scoring_pb2.StreamCallOutcomesResponse:
        tenant = _write_tenant()

        def batches() -> Iterator[Sequence[CallOutcome]]:
            for number, request in enumerate(request_iterator):
                _check_size(len(request.outcomes), self._max_batch, f"requests[{number}].outcomes")
                yield [call_outcome(m) for m in request.outcomes]

        summary = self._ingestion.stream_calls(tenant, batches())
        return scoring_pb2.StreamCallOutcomesResponse(summary=summary_message(summary))

    def ReportComplaints(self, request: scoring_pb2.ReportComplaintsRequest,
                         context: grpc.ServicerContext) -> scoring_pb2.ReportComplaintsResponse:
        tenant = _write_tenant()
        _check_size(len(request.complaints), self._max_batch, "complaints")
        summary = self._ingestion.report_complaints(tenant, [complaint(m) for m in request.complaints])
        return scoring_pb2.ReportComplaintsResponse(summary=summary_message(summary))

    def ReportReputationObservations(self, request: scoring_pb2.ReportReputationObservationsRequest,
                                     context: grpc.ServicerContext
                                     ) -> scoring_pb2.ReportReputationObservationsResponse:
        tenant = _write_tenant()
        _check_size(len(request.observations), self._max_batch, "observations")
        summary = self._ingestion.report_observations(tenant, [observation(m) for m in request.observations])
        return scoring_pb2.ReportReputationObservationsResponse(summary=summary_message(summary))

    def ImportReputationCsv(self, request: scoring_pb2.ImportReputationCsvRequest,
                            context: grpc.ServicerContext) -> scoring_pb2.ImportReputationCsvResponse:
        tenant = _write_tenant()
        summary = self._ingestion.import_csv(tenant, request.csv)
        return scoring_pb2.ImportReputationCsvResponse(summary=summary_message(summary))

    # --- Reading ---

    def GetHealth(self, request: scoring_pb2.GetHealthRequest,
                  context: grpc.ServicerContext) -> scoring_pb2.GetHealthResponse:
        return scoring_pb2.GetHealthResponse(health=self._reading.get(_read_tenant(), request.phone_number))

    def BatchGetHealth(self, request: scoring_pb2.BatchGetHealthRequest,
                       context: grpc.ServicerContext) -> scoring_pb2.BatchGetHealthResponse:
        result = self._reading.batch_get(_read_tenant(), request.phone_numbers)
        return scoring_pb2.BatchGetHealthResponse(health=result.found, not_found_phone_numbers=result.not_found)

    def ListHealth(self, request: scoring_pb2.ListHealthRequest,
                   context: grpc.ServicerContext) -> scoring_pb2.ListHealthResponse:
        query = ListQuery(tuple(int(s) for s in request.statuses), int(request.source), request.campaign_id,
                          request.area_code, request.phone_number_prefix)
        page = self._reading.list(_read_tenant(), query, request.page_size, request.page_token)
        return scoring_pb2.ListHealthResponse(health=page.health, next_page_token=page.next_page_token,
                                              counts=counts_message(page.counts))

    def ListHealthHistory(self, request: scoring_pb2.ListHealthHistoryRequest,
                          context: grpc.ServicerContext) -> scoring_pb2.ListHealthHistoryResponse:
        page = self._reading.history(_read_tenant(), request.phone_number, request.page_size, request.page_token)
        return scoring_pb2.ListHealthHistoryResponse(transitions=[transition_message(r) for r in page.transitions],
                                                     next_page_token=page.next_page_token)

    def GetWeeklyReport(self, request: scoring_pb2.GetWeeklyReportRequest,
                        context: grpc.ServicerContext) -> scoring_pb2.GetWeeklyReportResponse:
        end = from_timestamp(request.period_end) if request.HasField("period_end") else None
        return scoring_pb2.GetWeeklyReportResponse(report=report_message(self._reports.build(_read_tenant(), end)))

    def GetCallActivity(self, request: scoring_pb2.GetCallActivityRequest,
                        context: grpc.ServicerContext) -> scoring_pb2.GetCallActivityResponse:
        activity = self._reading.call_activity(_read_tenant(), request.phone_number, request.days,
                                               request.sample_size)
        response = scoring_pb2.GetCallActivityResponse(
            phone_number=activity.phone_number, sample_call_times=[to_timestamp(t) for t in activity.sample_call_times])
        for d in activity.days:
            response.days.add(date=d.day.date().isoformat(), outbound_calls=d.outbound, answered_calls=d.answered,
                              inbound_calls=d.inbound, talk_time=to_duration_ms(d.talk_ms), short_calls=d.short_calls,
                              blocked_calls=d.blocked, complaints=d.complaints)
        return response

    # --- Policy ---

    def GetScoringPolicy(self, request: scoring_pb2.GetScoringPolicyRequest,
                         context: grpc.ServicerContext) -> scoring_pb2.GetScoringPolicyResponse:
        return scoring_pb2.GetScoringPolicyResponse(policy=policy_message(self._policies.get(_read_tenant())))

    def UpdateScoringPolicy(self, request: scoring_pb2.UpdateScoringPolicyRequest,
                            context: grpc.ServicerContext) -> scoring_pb2.UpdateScoringPolicyResponse:
        tenant = _write_tenant()
        paths = checked_paths(request.update_mask, FIELDS, prefixes=("factor_weights.",))
        changes = policy_changes(request.policy, paths)
        return self._policies.update(current_principal(), tenant, changes, request.request_id, fingerprint(request))

    # --- Feed ---

    def WatchHealth(self, request: scoring_pb2.WatchHealthRequest,
                    context: grpc.ServicerContext) -> Iterator[scoring_pb2.WatchHealthResponse]:
        principal = current_principal()
        if request.after_revision < 0:
            raise InvalidArgument.for_field("after_revision", "must not be negative")
        if principal.is_platform:
            tenant: str | None = request.tenant_id or principal.tenant_id or None
        else:
            tenant = principal.tenant_for(request.tenant_id)
        yield from self._feed.watch(tenant, request.after_revision, request.snapshot, context.is_active)


def to_duration_ms(milliseconds: int) -> duration_pb2.Duration:
    return to_duration(timedelta(milliseconds=milliseconds))
