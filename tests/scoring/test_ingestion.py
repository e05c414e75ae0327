"""Ingestion: per-event rejections with reasons, late events in the right buckets, complaints, CSV, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from scoring.stack import A, B, error_of, factor, phone, status, triggered

from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.type.v1 import types_pb2 as types
from nhm_platform.protoconv import to_timestamp
from nhm_testing.errors import violations

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # the FakeClock's start


def activity(stack, number, days=10, metadata=A):
    reply = stack.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=number, days=days),
                                          metadata=metadata)
    return {d.date: d for d in reply.days}, reply


def test_each_bad_event_is_rejected_with_its_reason_and_the_rest_count(stack):
    stack.create_numbers(phone(1))
    stack.create_numbers(phone(2), metadata=B)
    calls = stack.calls
    good = calls.outbound(phone(1), NOW - timedelta(hours=1), answered=True, talk=40)
    batch = [
        good,
        calls.outbound(phone(3), NOW - timedelta(hours=1)),                        # 1: nobody's number
        calls.outbound(phone(2), NOW - timedelta(hours=1)),                        # 2: globex's number
        calls.outbound(phone(1), NOW - timedelta(days=8)),                         # 3: older than 7 days
        calls.outbound(phone(1), NOW + timedelta(hours=1)),                        # 4: in the future
        spb.CallOutcome(phone_number=phone(1), direction=spb.CALL_DIRECTION_OUTBOUND,
                        start_time=to_timestamp(NOW)),                                  # 5: no event id
        calls.outbound("+1 415 867 0001", NOW),                                    # 6: not E.164
        calls.outbound(phone(1), NOW, sip=42),                                     # 7: not a SIP code
        calls.outbound(phone(1), NOW, to="4158670009"),                            # 8: prospect not E.164
        spb.CallOutcome(event_id="no-direction", phone_number=phone(1), start_time=to_timestamp(NOW)),  # 9
        spb.CallOutcome(event_id="no-time", phone_number=phone(1), direction=spb.CALL_DIRECTION_OUTBOUND),  # 10
        calls.inbound(phone(1), NOW - timedelta(minutes=5)),
    ]
    summary = stack.report(batch)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (2, 0, 10)
    rejected = {r.index: (r.field, r.reason) for r in summary.rejections}
    assert all(r.result == spb.EVENT_RESULT_REJECTED for r in summary.rejections)
    assert sorted(rejected) == list(range(1, 11))
    assert rejected[1][0] == "outcomes[1].phone_number" and f"unknown number {phone(3)}" in rejected[1][1]
    # Another tenant's number reads exactly like a number that does not exist.
    assert rejected[2][1] == rejected[1][1].replace(phone(3), phone(2))
    assert rejected[3][0] == "outcomes[3].start_time" and "too late" in rejected[3][1]
    assert rejected[4][0] == "outcomes[4].start_time" and "future" in rejected[4][1]
    assert rejected[5][0] == "outcomes[5].event_id"
    assert rejected[6][0] == "outcomes[6].phone_number" and "E.164" in rejected[6][1]
    assert rejected[7][0] == "outcomes[7].sip_code"
    assert rejected[8][0] == "outcomes[8].remote_number"
    assert rejected[9][0] == "outcomes[9].direction"
    assert rejected[10][0] == "outcomes[10].start_time"
    assert summary.rejections[0].event_id == batch[1].event_id
    days, _ = activity(stack, phone(1), days=1)
    assert (days["2026-01-05"].outbound_calls, days["2026-01-05"].inbound_calls) == (1, 1)
    # Rejected events were not stored: once the number is known, the same event counts.
    stack.create_numbers(phone(3))
    assert stack.report([batch[1]]).accepted == 1


def test_late_and_out_of_order_events_land_in_their_own_day(stack):
    stack.create_numbers(phone(1))
    calls = stack.calls
    # Reported newest first; two of them are days late.
    batch = [calls.outbound(phone(1), NOW - timedelta(hours=2), answered=True, talk=8),
             calls.outbound(phone(1), NOW - timedelta(days=3, hours=1), answered=True, talk=125),
             calls.outbound(phone(1), NOW - timedelta(days=6, hours=20), sip=603,
                            disposition=spb.CALL_DISPOSITION_REJECTED),
             calls.outbound(phone(1), NOW - timedelta(days=3, hours=2))]
    assert stack.report(batch).accepted == 4
    stack.complain(phone(1), 2, when=NOW - timedelta(days=3))
    days, reply = activity(stack, phone(1), days=8)
    assert [d.date for d in reply.days] == ["2025-12-29", "2025-12-30", "2025-12-31", "2026-01-01", "2026-01-02",
                                            "2026-01-03", "2026-01-04", "2026-01-05"]
    jan2 = days["2026-01-02"]
    assert (jan2.outbound_calls, jan2.answered_calls, jan2.talk_time.seconds, jan2.complaints) == (2, 1, 125, 2)
    assert (days["2025-12-29"].outbound_calls, days["2025-12-29"].blocked_calls) == (1, 1)
    assert (days["2026-01-05"].answered_calls, days["2026-01-05"].short_calls) == (1, 1)
    assert days["2026-01-03"].outbound_calls == 0
    # Sample call times: newest first, whatever the order they were reported in.
    assert [t.ToDatetime(UTC) for t in reply.sample_call_times] == sorted(
        (b.start_time.ToDatetime(UTC) for b in batch), reverse=True)


def test_complaints_and_do_not_call_requests_make_a_number_at_risk(stack, clock):
    stack.create_numbers(phone(1))
    summary = stack.complain(phone(1), 2)
    assert summary.accepted == 2
    assert status(stack.health(phone(1))) == "HEALTHY"
    assert factor(stack.health(phone(1)), spb.RISK_FACTOR_KIND_COMPLAINTS).value == 2
    stack.complain(phone(1), 1, kind=spb.COMPLAINT_KIND_DO_NOT_CALL)
    health = stack.health(phone(1))
    assert status(health) == "AT_RISK" and triggered(health) == {"COMPLAINTS"}
    assert factor(health, spb.RISK_FACTOR_KIND_COMPLAINTS).advice == "Respect DNC requests, avoid overcalling."
    bad = stack.scoring.ReportComplaints(spb.ReportComplaintsRequest(complaints=[
        spb.Complaint(event_id="c-x", phone_number=phone(1), report_time=to_timestamp(NOW))]), metadata=A).summary
    assert bad.rejected == 1 and bad.rejections[0].field == "complaints[0].kind"
    # 30 days on, the complaints have aged out of their window.
    clock.advance(timedelta(days=31))
    stack.rescore_now()
    assert status(stack.health(phone(1))) == "HEALTHY"


def test_observations_infer_labels_from_vendor_words_and_reject_stale_ones(stack):
    stack.create_numbers(phone(1))
    observations = [
        spb.ReputationObservation(event_id="o1", phone_number=phone(1), source=types.REPUTATION_SOURCE_NOMOROBO,
                                  raw_label="Nuisance", observe_time=to_timestamp(NOW)),
        spb.ReputationObservation(event_id="o2", phone_number=phone(1), source=types.REPUTATION_SOURCE_TNS,
                                  raw_label="totally fine?", observe_time=to_timestamp(NOW)),
        spb.ReputationObservation(event_id="o3", phone_number=phone(1), source=types.REPUTATION_SOURCE_TNS,
                                  label=types.REPUTATION_LABEL_SPAM,
                                  observe_time=to_timestamp(NOW - timedelta(days=31))),
        spb.ReputationObservation(event_id="o4", phone_number=phone(1), label=types.REPUTATION_LABEL_SPAM,
                                  observe_time=to_timestamp(NOW)),
    ]
    summary = stack.scoring.ReportReputationObservations(
        spb.ReportReputationObservationsRequest(observations=observations), metadata=A).summary
    assert summary.accepted == 1
    assert {r.field: r.reason for r in summary.rejections}.keys() == {
        "observations[1].label", "observations[2].observe_time", "observations[3].source"}
    assert "carry no weight" in summary.rejections[1].reason
    health = stack.health(phone(1))
    # A minor app label: At Risk overall, no carrier affected.
    assert status(health) == "AT_RISK"
    assert {s.source: s.label for s in health.sources} == {types.REPUTATION_SOURCE_NOMOROBO:
                                                           types.REPUTATION_LABEL_MINOR}
    assert set(health.carrier_status.values()) == {types.HEALTH_STATUS_HEALTHY}


def test_an_older_observation_never_replaces_a_newer_one(stack):
    stack.create_numbers(phone(1))
    stack.observe(phone(1), types.REPUTATION_SOURCE_FIRST_ORION, types.REPUTATION_LABEL_CLEAN, when=NOW)
    stack.observe(phone(1), types.REPUTATION_SOURCE_FIRST_ORION, types.REPUTATION_LABEL_SCAM,
                  when=NOW - timedelta(hours=5), raw_label="Scam Likely")
    health = stack.health(phone(1))
    assert status(health) == "HEALTHY"
    assert [s.label for s in health.sources] == [types.REPUTATION_LABEL_CLEAN]


def test_csv_import_counts_good_rows_and_names_bad_ones(stack):
    stack.create_numbers(phone(1), phone(2))
    csv = (
        "Phone_Number,Source,Label,Observed_At,Score\n"
        f"{phone(1)},Hiya,Spam Likely,2026-01-05T14:00:00Z,87\n"
        f"{phone(2)},First Orion,clean,2026-01-05T09:00:00-05:00,\n"
        f"{phone(1)},Carrier Pigeon,spam,2026-01-05T14:00:00Z,\n"
        f"{phone(2)},TNS,spam-ish,2026-01-05T14:00:00Z,\n"
        f"{phone(2)},TNS,spam,yesterday,\n"
        f"{phone(2)},TNS,spam,2026-01-05T14:00:00Z,high\n"
        f"{phone(9)},TNS,spam,2026-01-05T14:00:00Z,\n"
        "\n"
        f"{phone(2)},T-Mobile,[SPAM?],2026-01-05T12:00:00Z,\n"
    ).encode()
    first = stack.scoring.ImportReputationCsv(spb.ImportReputationCsvRequest(csv=csv), metadata=A).summary
    assert (first.accepted, first.duplicates, first.rejected) == (3, 0, 5)
    assert [(r.index, r.field) for r in first.rejections] == [
        (3, "rows[3].source"), (4, "rows[4].label"), (5, "rows[5].observed_at"), (6, "rows[6].score"),
        (7, "rows[7].phone_number")]
    one = stack.health(phone(1))
    assert status(one) == "FLAGGED" and one.carrier_status["CARRIER_ATT"] == types.HEALTH_STATUS_FLAGGED
    assert [(s.raw_label, s.label) for s in one.sources] == [("Spam Likely", types.REPUTATION_LABEL_SPAM)]
    two = stack.health(phone(2))
    assert status(two) == "AT_RISK" and two.carrier_status["CARRIER_TMOBILE"] == types.HEALTH_STATUS_AT_RISK
    # The same export again: every good row is a duplicate (event ids derived from the rows' content).
    again = stack.scoring.ImportReputationCsv(spb.ImportReputationCsvRequest(csv=csv), metadata=A).summary
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, 5)

    missing = error_of(lambda: stack.scoring.ImportReputationCsv(
        spb.ImportReputationCsvRequest(csv=b"phone_number,label\n+14158670001,spam\n"), metadata=A))
    assert missing.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "source, observed_at" in violations(missing)["csv"]
    binary = error_of(lambda: stack.scoring.ImportReputationCsv(
        spb.ImportReputationCsvRequest(csv=b"\xff\xfe\x00"), metadata=A))
    assert binary.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_streamed_batches_report_rejections_by_their_place_in_the_stream(stack):
    stack.create_numbers(phone(1))
    calls = stack.calls
    requests = [spb.StreamCallOutcomesRequest(outcomes=[calls.outbound(phone(1), NOW - timedelta(minutes=i))
                                                        for i in range(3)]),
                spb.StreamCallOutcomesRequest(outcomes=[calls.outbound(phone(1), NOW), calls.outbound(phone(7), NOW)]),
                spb.StreamCallOutcomesRequest()]
    summary = stack.scoring.StreamCallOutcomes(iter(requests), metadata=A).summary
    assert (summary.accepted, summary.rejected) == (4, 1)
    assert (summary.rejections[0].index, summary.rejections[0].field) == (4, "requests[1].outcomes[1].phone_number")


def test_batches_over_the_limit_and_read_only_or_unknown_keys_are_refused(start_service, clock):
    from scoring.stack import start_stack

    small = start_stack(start_service, clock, max_batch_events=3)
    small.create_numbers(phone(1))
    calls = [small.calls.outbound(phone(1), NOW) for _ in range(4)]
    too_many = error_of(lambda: small.report(calls))
    assert too_many.code() is grpc.StatusCode.INVALID_ARGUMENT and "outcomes" in violations(too_many)
    streamed = error_of(lambda: small.scoring.StreamCallOutcomes(
        iter([spb.StreamCallOutcomesRequest(outcomes=calls[:2]), spb.StreamCallOutcomesRequest(outcomes=calls)]),
        metadata=A))
    assert streamed.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[1].outcomes" in violations(streamed)
    unknown = error_of(lambda: small.report(calls[:1], metadata=(("authorization", "Bearer nope"),)))
    assert unknown.code() is grpc.StatusCode.UNAUTHENTICATED
    small.close()
