"""The RemediationService API through a real server: opening by hand, tasks, notes, cancelling, the audit trail,
lists and filters, evidence packets, the policy, the case feed, and who may see and do what."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from remediation.support import Remediation, saw_health, tasks_of, wait_for

from nhm.registry.v1 import registry_pb2
from nhm.remediation.v1 import remediation_pb2 as rpb
from nhm.remediation.v1 import remediation_pb2_grpc
from nhm.type.v1 import types_pb2 as t
from nhm_platform.protoconv import to_duration
from nhm_testing.keys import SERVICE_KEY, TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY, auth

P1, P2, P3 = "+14158670011", "+12127360012", "+13056740013"
S = t.LifecycleState


def mask(*paths):
    return field_mask_pb2.FieldMask(paths=list(paths))


def violations(exc: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(exc)
    fields = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def fails(code, call, *args):
    with pytest.raises(grpc.RpcError) as info:
        call(*args)
    assert info.value.code() is code, info.value.details()
    return info.value


@pytest.fixture
def service(remediation, upstreams):
    registry = upstreams.registry
    registry.add_number(TENANT_A, P1, campaigns=("cmp-east",))
    registry.add_number(TENANT_A, P2, campaigns=("cmp-west",))
    registry.add_number(TENANT_A, P3, campaigns=("cmp-east",))
    registry.add_number(TENANT_B, "+14158670099")
    handle = remediation()
    with handle.channel() as channel:
        yield handle, Remediation(channel, TENANT_A_KEY), Remediation(channel, TENANT_B_KEY)


def flagged(api, scoring, phone, sources=(t.REPUTATION_SOURCE_HIYA,)):
    scoring.set_health(TENANT_A, phone, dict.fromkeys(sources, "spam"))
    return api.wait_case(phone, lambda c: c.stage == rpb.CASE_STAGE_RESTING
                         and tasks_of(c, rpb.TASK_KIND_REGISTRATION), "case resting, registrations planned")


def test_operator_opens_a_case_and_another_trigger_joins_it(service, upstreams):
    _, acme, globex = service
    registry = upstreams.registry
    request = rpb.OpenCaseRequest(phone_number=P1, reason="customer complaint", request_id="open-1")
    first = wait_for(lambda: _open_once_known(acme, request), what="number replicated, case opened")
    assert first.created and first.case.kind == rpb.CASE_KIND_REMEDIATION
    assert first.case.triggers == ["opened by tenant:static: customer complaint"]
    again = acme.OpenCase(rpb.OpenCaseRequest(phone_number=P1, reason="customer complaint", request_id="open-1"))
    assert again == first  # the same request id gets the first answer
    fails(grpc.StatusCode.FAILED_PRECONDITION, acme.OpenCase,
          rpb.OpenCaseRequest(phone_number=P1, reason="other", request_id="open-1"))
    joined = acme.OpenCase(rpb.OpenCaseRequest(phone_number=P1, kind=rpb.CASE_KIND_WATCH, reason="second look"))
    assert not joined.created and joined.case.id == first.case.id and len(joined.case.triggers) == 2
    wait_for(lambda: registry.transitions(P1) == ["QUARANTINED", "RESTING"], what="quarantine then rest")

    watch = acme.OpenCase(rpb.OpenCaseRequest(phone_number=P2, kind=rpb.CASE_KIND_WATCH))
    assert watch.case.stage == rpb.CASE_STAGE_WATCHING and not tasks_of(watch.case, rpb.TASK_KIND_QUARANTINE)

    error = fails(grpc.StatusCode.INVALID_ARGUMENT, acme.OpenCase, rpb.OpenCaseRequest(phone_number="+1 415 867"))
    assert violations(error) == ["phone_number"]
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.OpenCase, rpb.OpenCaseRequest(phone_number="+14155550123"))
    fails(grpc.StatusCode.NOT_FOUND, acme.OpenCase, rpb.OpenCaseRequest(phone_number="+14158670098"))
    # Another tenant's number and case do not exist for this caller.
    fails(grpc.StatusCode.NOT_FOUND, globex.OpenCase, rpb.OpenCaseRequest(phone_number=P1))
    fails(grpc.StatusCode.NOT_FOUND, globex.GetCase, rpb.GetCaseRequest(case_id=first.case.id))
    assert globex.cases() == []
    assert registry.transitions(P2) == []


def _open_once_known(api, request):
    """OpenCase, or None while the number has not reached the service through the registry's feed yet."""
    try:
        return api.OpenCase(request)
    except grpc.RpcError as exc:
        if exc.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise


def test_tasks_notes_and_the_audit_trail(service, upstreams, clock):
    _, acme, globex = service
    case = flagged(acme, upstreams.scoring, P1, (t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_TNS))
    dispute = next(d for d in tasks_of(case, rpb.TASK_KIND_DISPUTE) if d.source == t.REPUTATION_SOURCE_HIYA)
    assert dispute.owner == "operator" and dispute.status == rpb.TASK_STATUS_PENDING and not dispute.overdue

    submitted = acme.UpdateTask(rpb.UpdateTaskRequest(
        task=rpb.Task(id=dispute.id, case_id=case.id, reference="HIYA-7781", owner="jane@acme.example"),
        update_mask=mask("reference", "owner"), etag=dispute.etag, request_id="submit-1"))
    task = submitted.task
    assert task.status == rpb.TASK_STATUS_IN_PROGRESS and task.reference == "HIYA-7781"
    # Monday 2026-01-05 + 5 business days.
    assert task.due_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 12, 15, 0, tzinfo=UTC)
    assert task.etag != dispute.etag
    error = fails(grpc.StatusCode.ABORTED, acme.UpdateTask, rpb.UpdateTaskRequest(
        task=rpb.Task(id=dispute.id, case_id=case.id, notes="late"), update_mask=mask("notes"), etag=dispute.etag))
    assert "read it again" in error.details()
    cleared = acme.UpdateTask(rpb.UpdateTaskRequest(
        task=rpb.Task(id=dispute.id, case_id=case.id, outcome=rpb.TASK_OUTCOME_CLEARED),
        update_mask=mask("outcome"), etag=task.etag)).task
    assert cleared.status == rpb.TASK_STATUS_DONE and cleared.outcome == rpb.TASK_OUTCOME_CLEARED

    quarantine = tasks_of(case, rpb.TASK_KIND_QUARANTINE)[0]
    fails(grpc.StatusCode.FAILED_PRECONDITION, acme.UpdateTask, rpb.UpdateTaskRequest(
        task=rpb.Task(id=quarantine.id, case_id=case.id, status=rpb.TASK_STATUS_PENDING), update_mask=mask("status")))
    error = fails(grpc.StatusCode.INVALID_ARGUMENT, acme.UpdateTask, rpb.UpdateTaskRequest(
        task=rpb.Task(id=dispute.id, case_id=case.id, kind=rpb.TASK_KIND_REST), update_mask=mask("kind")))
    assert violations(error) == ["update_mask.paths[0]"]
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.UpdateTask, rpb.UpdateTaskRequest(
        task=rpb.Task(id=dispute.id, case_id=case.id), update_mask=mask("status")))
    fails(grpc.StatusCode.NOT_FOUND, globex.UpdateTask, rpb.UpdateTaskRequest(
        task=rpb.Task(id=dispute.id, case_id=case.id, notes="x"), update_mask=mask("notes")))

    noted = acme.AddCaseNote(rpb.AddCaseNoteRequest(case_id=case.id, note="called Hiya support"))
    assert noted.case.id == case.id
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.AddCaseNote, rpb.AddCaseNoteRequest(case_id=case.id, note="  "))

    events = acme.events(case.id)
    kinds = [e.event_type for e in events]
    assert kinds[0] == "case.opened" and events[0].actor == "service:scoring"
    for expected in ("task.created", "task.status", "number.transitioned", "stage.changed", "task.updated",
                     "dispute.submitted", "dispute.cleared", "note.added"):
        assert expected in kinds, expected
    note = next(e for e in events if e.event_type == "note.added")
    assert note.actor == "tenant:static" and note.detail == "called Hiya support" and note.HasField("event_time")
    submit = next(e for e in events if e.event_type == "dispute.submitted")
    assert submit.task_id == dispute.id and "HIYA-7781" in submit.detail
    page = acme.ListCaseEvents(rpb.ListCaseEventsRequest(case_id=case.id, page_size=3))
    rest = acme.ListCaseEvents(rpb.ListCaseEventsRequest(case_id=case.id, page_size=1000,
                                                         page_token=page.next_page_token))
    assert [e.event_type for e in [*page.events, *rest.events]] == kinds
    fails(grpc.StatusCode.NOT_FOUND, globex.ListCaseEvents, rpb.ListCaseEventsRequest(case_id=case.id))


def test_lists_filter_by_state_stage_number_campaign_and_overdue(service, upstreams, clock):
    _, acme, _ = service
    scoring = upstreams.scoring
    east = flagged(acme, scoring, P1)
    west = flagged(acme, scoring, P2)
    assert [c.id for c in acme.cases(campaign_id="cmp-east")] == [east.id]
    assert [c.id for c in acme.cases(phone_number=P2)] == [west.id]
    assert {c.id for c in acme.cases(states=[rpb.CASE_STATE_OPEN], stages=[rpb.CASE_STAGE_RESTING])} == {
        east.id, west.id}
    assert acme.cases(states=[rpb.CASE_STATE_RESOLVED]) == []
    assert acme.cases(overdue=True) == []
    first = acme.ListCases(rpb.ListCasesRequest(page_size=1))
    second = acme.ListCases(rpb.ListCasesRequest(page_size=1, page_token=first.next_page_token))
    assert [c.id for c in [*first.cases, *second.cases]] == [west.id, east.id]  # newest first
    assert second.next_page_token == ""
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.ListCases, rpb.ListCasesRequest(states=[0]))

    clock.advance(timedelta(days=8))  # past the 5-business-day deadlines
    overdue = acme.ListTasks(rpb.ListTasksRequest(overdue=True)).tasks
    assert {(task.case_id, task.kind) for task in overdue} == {
        (east.id, rpb.TASK_KIND_DISPUTE), (east.id, rpb.TASK_KIND_REGISTRATION),
        (west.id, rpb.TASK_KIND_DISPUTE), (west.id, rpb.TASK_KIND_REGISTRATION)}
    assert all(task.overdue for task in overdue)
    assert {c.id for c in acme.cases(overdue=True)} == {east.id, west.id}
    disputes = acme.ListTasks(rpb.ListTasksRequest(kinds=[rpb.TASK_KIND_DISPUTE], overdue=True)).tasks
    assert len(disputes) == 2
    seen, token = [], ""
    while True:
        page = acme.ListTasks(rpb.ListTasksRequest(overdue=True, page_size=1, page_token=token))
        seen += [task.id for task in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(task.id for task in overdue)
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.ListTasks, rpb.ListTasksRequest(page_token="garbage"))
    token = acme.ListTasks(rpb.ListTasksRequest(overdue=True, page_size=1)).next_page_token
    # A page token only works with the filters it was made for.
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.ListTasks, rpb.ListTasksRequest(page_token=token))


def test_cancel_with_restore_returns_the_number_through_warm_up(service, upstreams):
    _, acme, _ = service
    registry = upstreams.registry
    case = flagged(acme, upstreams.scoring, P1)
    wait_for(lambda: registry.state(TENANT_A, P1) == S.LIFECYCLE_STATE_RESTING, what="resting")
    cancelled = acme.CancelCase(rpb.CancelCaseRequest(case_id=case.id, reason="false positive", restore_number=True))
    assert cancelled.case.state == rpb.CASE_STATE_CANCELLED and cancelled.case.stage == rpb.CASE_STAGE_CLOSED
    assert all(task.status not in (rpb.TASK_STATUS_PENDING, rpb.TASK_STATUS_IN_PROGRESS)
               for task in cancelled.case.tasks)
    wait_for(lambda: registry.state(TENANT_A, P1) == S.LIFECYCLE_STATE_WARMING, what="restored to warm-up")
    fails(grpc.StatusCode.FAILED_PRECONDITION, acme.CancelCase, rpb.CancelCaseRequest(case_id=case.id))
    events = acme.events(case.id)
    cancel = next(e for e in events if e.event_type == "case.cancelled")
    assert cancel.actor == "tenant:static" and "false positive" in cancel.detail


def test_evidence_packets_as_json_and_csv(service, upstreams, clock):
    _, acme, globex = service
    scoring = upstreams.scoring
    today = clock.now().date()
    days = [((today - timedelta(days=29 - i)).isoformat(), 80 if i % 2 else 60, 12 if i % 2 else 6, 600.0,
             1 if i == 29 else 0) for i in range(30)]
    samples = [clock.now() - timedelta(hours=h) for h in range(1, 11)]
    scoring.set_activity(P1, days, samples)
    case = flagged(acme, scoring, P1, (t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_FIRST_ORION))
    disputes = tasks_of(case, rpb.TASK_KIND_DISPUTE)

    response = acme.GetEvidencePacket(rpb.GetEvidencePacketRequest(case_id=case.id, format=rpb.EVIDENCE_FORMAT_JSON))
    assert response.content_type == "application/json" and response.filename.endswith(".json")
    assert sorted(p.source for p in response.packets) == [t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_FIRST_ORION]
    packet = response.packets[0]
    outbound = sum(d[1] for d in days)
    answered = sum(d[2] for d in days)
    assert packet.business_name == "Acme Outbound LLC" and packet.call_purpose == "B2B software sales follow-up"
    assert packet.attestation == t.ATTESTATION_A and packet.phone_number == P1
    assert len(packet.calls_per_day) == 30 and packet.calls_per_day[-1].outbound_calls == days[-1][1]
    assert packet.average_calls_per_day == pytest.approx(outbound / 30)
    assert packet.answer_rate == pytest.approx(answered / outbound, abs=1e-4)
    assert packet.average_talk_time.ToTimedelta() == timedelta(seconds=600 * 30 / answered)
    assert packet.complaint_count == 1 and len(packet.sample_call_times) == 10
    document = json.loads(response.content)
    assert [p["total_outbound_calls"] for p in document["packets"]] == [outbound, outbound]
    # The scoring call carried the service key and named the tenant.
    assert scoring.metadata[-1]["authorization"] == f"Bearer {SERVICE_KEY}"
    assert scoring.metadata[-1]["x-nhm-tenant-id"] == TENANT_A

    one = acme.GetEvidencePacket(rpb.GetEvidencePacketRequest(case_id=case.id, task_id=disputes[0].id,
                                                              format=rpb.EVIDENCE_FORMAT_CSV))
    assert one.content_type == "text/csv" and len(one.packets) == 1
    rows = list(csv.DictReader(io.StringIO(one.content.decode())))
    assert len(rows) == 1 and rows[0]["phone_number"] == P1 and rows[0]["total_outbound_calls"] == str(outbound)
    assert rows[0]["calls_per_day"].split(";")[0] == f"{days[0][0]}:{days[0][1]}/{days[0][2]}"

    rest = tasks_of(case, rpb.TASK_KIND_REST)[0]
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.GetEvidencePacket,
          rpb.GetEvidencePacketRequest(case_id=case.id, task_id=rest.id))
    fails(grpc.StatusCode.NOT_FOUND, globex.GetEvidencePacket, rpb.GetEvidencePacketRequest(case_id=case.id))
    scoring.activity_unimplemented = True
    error = fails(grpc.StatusCode.UNAVAILABLE, acme.GetEvidencePacket, rpb.GetEvidencePacketRequest(case_id=case.id))
    assert "retry" in error.details()


def test_policy_defaults_updates_and_validation(service):
    _, acme, globex = service
    policy = acme.GetRemediationPolicy(rpb.GetRemediationPolicyRequest()).policy
    assert policy.watch_at_risk and not policy.quarantine_at_risk and not policy.auto_retire
    assert policy.rest_duration.ToTimedelta() == timedelta(days=14)
    assert list(policy.warmup_daily_caps) == [20, 40, 60, 100]
    assert policy.warmup_step_duration.ToTimedelta() == timedelta(days=3)
    assert policy.dispute_review_business_days == 5 and policy.max_cycles == 3
    assert policy.max_labelled_duration.ToTimedelta() == timedelta(days=30)
    assert policy.max_resting_share == pytest.approx(0.30) and policy.use_free_caller_registry
    assert policy.escalation_rest_multiplier == 2.0

    update = rpb.RemediationPolicy(rest_duration=to_duration(timedelta(days=21)), auto_retire=True,
                                   warmup_daily_caps=[10, 30, 50])
    changed = acme.UpdateRemediationPolicy(rpb.UpdateRemediationPolicyRequest(
        policy=update, update_mask=mask("rest_duration", "auto_retire", "warmup_daily_caps"))).policy
    assert changed.rest_duration.ToTimedelta() == timedelta(days=21) and changed.auto_retire
    assert list(changed.warmup_daily_caps) == [10, 30, 50] and changed.max_cycles == 3
    assert acme.GetRemediationPolicy(rpb.GetRemediationPolicyRequest()).policy == changed
    assert globex.GetRemediationPolicy(rpb.GetRemediationPolicyRequest()).policy == policy
    # A path named without a value goes back to its default.
    reset = acme.UpdateRemediationPolicy(rpb.UpdateRemediationPolicyRequest(
        policy=rpb.RemediationPolicy(), update_mask=mask("rest_duration"))).policy
    assert reset.rest_duration.ToTimedelta() == timedelta(days=14) and reset.auto_retire

    error = fails(grpc.StatusCode.INVALID_ARGUMENT, acme.UpdateRemediationPolicy, rpb.UpdateRemediationPolicyRequest(
        policy=rpb.RemediationPolicy(warmup_daily_caps=[40, 20], max_resting_share=1.5),
        update_mask=mask("warmup_daily_caps", "max_resting_share")))
    assert sorted(violations(error)) == ["policy.max_resting_share", "policy.warmup_daily_caps[1]"]
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.UpdateRemediationPolicy, rpb.UpdateRemediationPolicyRequest(
        policy=rpb.RemediationPolicy(), update_mask=mask("tenant_id")))
    fails(grpc.StatusCode.INVALID_ARGUMENT, acme.UpdateRemediationPolicy, rpb.UpdateRemediationPolicyRequest(
        policy=rpb.RemediationPolicy(auto_retire=True)))
    assert acme.GetRemediationPolicy(rpb.GetRemediationPolicyRequest()).policy == reset


def test_watch_cases_sends_a_snapshot_then_changes_per_tenant(service, upstreams):
    handle, acme, _ = service
    case = flagged(acme, upstreams.scoring, P1)
    channel = grpc.insecure_channel(handle.address)
    stub = remediation_pb2_grpc.RemediationServiceStub(channel)
    received: list[rpb.WatchCasesResponse] = []
    done = threading.Event()

    def watch(key, request, sink):
        call = stub.WatchCases(request, metadata=auth(key))
        try:
            for item in call:
                sink.append(item)
                if done.is_set():
                    break
        except grpc.RpcError:
            pass
        finally:
            call.cancel()

    other: list[rpb.WatchCasesResponse] = []
    everyone: list[rpb.WatchCasesResponse] = []
    threads = [threading.Thread(target=watch, args=(TENANT_A_KEY, rpb.WatchCasesRequest(snapshot=True), received)),
               threading.Thread(target=watch, args=(TENANT_B_KEY, rpb.WatchCasesRequest(snapshot=True), other)),
               threading.Thread(target=watch, args=(SERVICE_KEY, rpb.WatchCasesRequest(snapshot=True), everyone))]
    for thread in threads:
        thread.start()
    wait_for(lambda: any(r.heartbeat for r in received), what="snapshot heartbeat")
    snapshot_item = received[0]
    assert snapshot_item.revision == 0 and snapshot_item.kind == t.CHANGE_KIND_CREATED
    assert snapshot_item.case.id == case.id
    head = next(r for r in received if r.heartbeat).revision
    assert head > 0
    acme.AddCaseNote(rpb.AddCaseNoteRequest(case_id=case.id, note="watching"))
    change = wait_for(lambda: next((r for r in received if not r.heartbeat and r.revision > head), None),
                      what="live change")
    assert change.kind == t.CHANGE_KIND_UPDATED and change.case.id == case.id
    wait_for(lambda: any(r.case.id == case.id and r.revision > head for r in everyone), what="service watcher")
    done.set()
    acme.AddCaseNote(rpb.AddCaseNoteRequest(case_id=case.id, note="bye"))
    for thread in threads:
        thread.join(5)
    channel.close()
    assert all(not r.HasField("case") for r in other)  # globex sees heartbeats only

    # Resuming after a revision replays what followed it.
    with grpc.insecure_channel(handle.address) as channel:
        stub = remediation_pb2_grpc.RemediationServiceStub(channel)
        call = stub.WatchCases(rpb.WatchCasesRequest(after_revision=head), metadata=auth(TENANT_A_KEY), timeout=5)
        first = next(iter(call))
        call.cancel()
    assert first.revision == change.revision and first.case.id == case.id


def test_keys_replicated_from_the_registry_authenticate_and_read_only_keys_cannot_write(service, upstreams):
    handle, _, _ = service
    registry = upstreams.registry
    registry.add_api_key(TENANT_A, "key-ro", "nhm_ro_secret_0123456789", registry_pb2.API_KEY_ROLE_READ_ONLY)
    registry.add_api_key(TENANT_A, "key-rw", "nhm_rw_secret_0123456789", registry_pb2.API_KEY_ROLE_TENANT)
    with grpc.insecure_channel(handle.address) as channel:
        reader = Remediation(channel, "nhm_ro_secret_0123456789")
        writer = Remediation(channel, "nhm_rw_secret_0123456789")

        def resolves(api):
            try:
                return api.GetRemediationPolicy(rpb.GetRemediationPolicyRequest()) is not None
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.UNAUTHENTICATED
                return False

        wait_for(lambda: resolves(reader) and resolves(writer), what="replicated keys")
        error = fails(grpc.StatusCode.PERMISSION_DENIED, reader.OpenCase, rpb.OpenCaseRequest(phone_number=P1))
        assert "read-only" in error.details()
        fails(grpc.StatusCode.PERMISSION_DENIED, reader.UpdateRemediationPolicy, rpb.UpdateRemediationPolicyRequest(
            policy=rpb.RemediationPolicy(auto_retire=True), update_mask=mask("auto_retire")))
        assert writer.OpenCase(rpb.OpenCaseRequest(phone_number=P1)).created
        events = writer.events(writer.case_for(P1).id)
        assert events[0].actor == "tenant:key-rw"
        fails(grpc.StatusCode.UNAUTHENTICATED, Remediation(channel, "nhm_unknown_key_01234567").GetRemediationPolicy,
              rpb.GetRemediationPolicyRequest())


def test_health_seen_in_the_audit_trail_and_number_retired_elsewhere_closes_the_case(service, upstreams):
    _, acme, _ = service
    case = flagged(acme, upstreams.scoring, P3)
    upstreams.scoring.set_health(TENANT_A, P3, {})
    saw_health(acme, case.id, "Healthy")
    upstreams.registry.set_state(TENANT_A, P3, S.LIFECYCLE_STATE_RETIRED)
    closed = acme.wait_case(P3, lambda c: c.state == rpb.CASE_STATE_RETIRED, "closed by the registry")
    assert closed.stage == rpb.CASE_STAGE_CLOSED and closed.close_time.seconds > 0
    retired = next(e for e in acme.events(case.id) if e.event_type == "case.retired")
    assert retired.actor == "registry" and "retired in the registry" in retired.detail
