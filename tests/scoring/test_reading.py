"""Reading health: the dashboard list (filters, keyset pages, counts per status), history pages, tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from scoring.stack import SERVICE, A, B, error_of, phone, status

from nhm.registry.v1 import registry_pb2 as rpb
from nhm.scoring.v1 import scoring_pb2 as spb
from nhm.type.v1 import types_pb2 as types
from nhm_platform.auth import TENANT_METADATA_KEY
from nhm_testing.errors import violations

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
SF = [phone(i) for i in range(12)]
NY = [phone(i, "212") for i in range(5)]


def list_all(stack, metadata=A, page_size=5, **filters):
    """Every page of a ListHealth call: (phones in order, counts of each page)."""
    phones, counts, token = [], [], ""
    while True:
        reply = stack.scoring.ListHealth(spb.ListHealthRequest(page_size=page_size, page_token=token, **filters),
                                         metadata=metadata)
        phones += [h.phone_number for h in reply.health]
        counts.append(reply.counts)
        token = reply.next_page_token
        if not token:
            return phones, counts


def test_the_dashboard_list_filters_pages_and_counts(stack):
    stack.create_numbers(*SF, *NY)
    campaign = stack.registry.CreateCampaign(rpb.CreateCampaignRequest(campaign=rpb.Campaign(name="west")),
                                             metadata=A).campaign
    stack.registry.AssignNumbers(rpb.AssignNumbersRequest(campaign_id=campaign.id, phone_numbers=SF[:4]),
                                 metadata=A)
    for number in (SF[1], SF[5], NY[0]):
        stack.observe(number, types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM)
    stack.observe(SF[6], types.REPUTATION_SOURCE_TNS, types.REPUTATION_LABEL_BLOCKED)
    stack.observe(SF[7], types.REPUTATION_SOURCE_TNS, types.REPUTATION_LABEL_CLEAN)
    stack.complain(SF[2], 3)
    stack.wait_for(lambda: list(stack.health(SF[0]).campaign_ids) == [campaign.id], "the assignment to replicate")

    everything = sorted(SF + NY)
    phones, counts = list_all(stack)
    assert phones == everything  # keyset pages in number order, nothing twice, nothing missed
    expected = spb.StatusCounts(healthy=12, at_risk=1, flagged=3, blocked=1, total=17)
    assert len(counts) == 4 and all(c == expected for c in counts)

    flagged, counts = list_all(stack, statuses=[types.HEALTH_STATUS_FLAGGED, types.HEALTH_STATUS_BLOCKED])
    assert flagged == sorted([SF[1], SF[5], SF[6], NY[0]])
    assert counts[0] == expected  # counts ignore the status filter itself
    assert list_all(stack, source=types.REPUTATION_SOURCE_HIYA)[0] == sorted([SF[1], SF[5], NY[0]])
    assert list_all(stack, source=types.REPUTATION_SOURCE_TNS)[0] == [SF[6]]  # the clean TNS view is no label
    in_campaign, counts = list_all(stack, campaign_id=campaign.id)
    assert in_campaign == SF[:4]
    assert counts[0] == spb.StatusCounts(healthy=2, at_risk=1, flagged=1, blocked=0, total=4)
    assert list_all(stack, area_code="212")[0] == NY
    assert list_all(stack, phone_number_prefix="+1415867000")[0] == SF[:10]
    assert list_all(stack, area_code="212", statuses=[types.HEALTH_STATUS_HEALTHY])[0] == NY[1:]
    assert list_all(stack, page_size=0)[0] == everything  # default page size

    first = stack.scoring.ListHealth(spb.ListHealthRequest(page_size=2), metadata=A)
    wrong = error_of(lambda: stack.scoring.ListHealth(
        spb.ListHealthRequest(page_size=2, page_token=first.next_page_token, area_code="212"), metadata=A))
    assert wrong.code() is grpc.StatusCode.INVALID_ARGUMENT and "page_token" in violations(wrong)
    bad = error_of(lambda: stack.scoring.ListHealth(
        spb.ListHealthRequest(area_code="41a", phone_number_prefix="1415", statuses=[9]), metadata=A))
    assert set(violations(bad)) == {"area_code", "phone_number_prefix", "statuses"}


def test_history_pages_newest_first(stack, clock):
    stack.create_numbers(SF[0])
    for _i in range(5):
        clock.advance(timedelta(hours=1))
        stack.observe(SF[0], types.REPUTATION_SOURCE_FIRST_ORION, types.REPUTATION_LABEL_SCAM, raw_label="Fraud")
        clock.advance(timedelta(hours=1))
        stack.observe(SF[0], types.REPUTATION_SOURCE_FIRST_ORION, types.REPUTATION_LABEL_CLEAN)
    transitions, token = [], ""
    while True:
        reply = stack.scoring.ListHealthHistory(
            spb.ListHealthHistoryRequest(phone_number=SF[0], page_size=3, page_token=token), metadata=A)
        transitions += reply.transitions
        token = reply.next_page_token
        if not token:
            break
    assert len(transitions) == 11
    times = [t.transition_time.ToDatetime(UTC) for t in transitions]
    assert times == sorted(times, reverse=True) and times[0] == NOW + timedelta(hours=10)
    assert [status(t, "to_status") for t in transitions[:2]] == ["HEALTHY", "FLAGGED"]
    assert transitions[1].cause == "First Orion: Fraud"
    assert (status(transitions[-1], "from_status"), status(transitions[-1], "to_status")) == ("UNSPECIFIED",
                                                                                              "HEALTHY")


def test_a_tenant_sees_nothing_of_another_tenants_numbers(stack):
    stack.create_numbers(SF[0])
    stack.create_numbers(NY[0], metadata=B)
    stack.observe(SF[0], types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_SPAM)
    scoring = stack.scoring
    for call in (lambda: scoring.GetHealth(spb.GetHealthRequest(phone_number=SF[0]), metadata=B),
                 lambda: scoring.ListHealthHistory(spb.ListHealthHistoryRequest(phone_number=SF[0]), metadata=B),
                 lambda: scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=SF[0]), metadata=B)):
        assert error_of(call).code() is grpc.StatusCode.NOT_FOUND
    assert list_all(stack, metadata=B)[0] == [NY[0]]
    assert stack.observe(SF[0], types.REPUTATION_SOURCE_HIYA, types.REPUTATION_LABEL_CLEAN, metadata=B).rejected == 1
    assert stack.complain(SF[0], 3, metadata=B).rejected == 3
    assert stack.report([stack.calls.outbound(SF[0], NOW)], metadata=B).rejected == 1
    assert status(stack.health(SF[0])) == "FLAGGED"  # untouched by globex
    # The feed: globex sees only its own; asking for acme's is refused like a tenant that does not exist.
    stream = scoring.WatchHealth(spb.WatchHealthRequest(snapshot=True), metadata=B, timeout=5)
    seen = []
    for change in stream:
        if change.heartbeat:
            break
        seen.append(change.health.phone_number)
    stream.cancel()
    assert seen == [NY[0]]
    refused = error_of(lambda: next(iter(scoring.WatchHealth(spb.WatchHealthRequest(tenant_id="acme"),
                                                             metadata=B, timeout=5))))
    assert refused.code() is grpc.StatusCode.NOT_FOUND
    # A service key acts for the tenant named in its metadata.
    acting = (*SERVICE, (TENANT_METADATA_KEY, "acme"))
    assert status(stack.health(SF[0], metadata=acting)) == "FLAGGED"
    assert error_of(lambda: stack.health(SF[0], metadata=(*SERVICE, (TENANT_METADATA_KEY, "globex")))
                    ).code() is grpc.StatusCode.NOT_FOUND


def test_call_activity_defaults_and_limits(stack):
    stack.create_numbers(SF[0])
    stack.report([stack.calls.outbound(SF[0], NOW - timedelta(minutes=i), answered=i % 2 == 0, talk=30)
                  for i in range(15)])
    reply = stack.scoring.GetCallActivity(spb.GetCallActivityRequest(phone_number=SF[0]), metadata=A)
    assert len(reply.days) == 30 and reply.days[-1].date == "2026-01-05" and reply.days[0].date == "2025-12-07"
    assert (reply.days[-1].outbound_calls, reply.days[-1].answered_calls) == (15, 8)
    assert reply.days[-1].talk_time.seconds == 8 * 30
    assert len(reply.sample_call_times) == 10
    assert reply.sample_call_times[0].ToDatetime(UTC) == NOW
    wide = error_of(lambda: stack.scoring.GetCallActivity(
        spb.GetCallActivityRequest(phone_number=SF[0], days=91, sample_size=101), metadata=A))
    assert set(violations(wide)) == {"days", "sample_size"}
    assert error_of(lambda: stack.scoring.GetCallActivity(
        spb.GetCallActivityRequest(phone_number="415"), metadata=A)).code() is grpc.StatusCode.INVALID_ARGUMENT
