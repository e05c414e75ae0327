"""The server's limits through a real server: request size, calls at once, per-tenant rate of bulk calls."""

from __future__ import annotations

import base64
import threading
import time
from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm_platform.auth import Principal, Role, StaticKeyResolver
from nhm_platform.errors import FieldViolation, InvalidArgument, ResourceExhausted
from nhm_platform.ratelimit import TenantRateLimit, TokenBuckets
from nhm_platform.server import ServiceRegistration, create_server, method_names
from nhm_platform.settings import ServerSettings
from nhm_platform.wellformed import malformed_fields
from nhm_testing.keys import SERVICE_KEY, TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY, auth

SERVICE_NAME = "nhm.registry.v1.RegistryService"


class Servicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self) -> None:
        self.handled: list[str] = []
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def BatchCreateNumbers(self, request, context):
        self.handled.append("BatchCreateNumbers")
        return registry_pb2.BatchCreateNumbersResponse()

    def GetNumber(self, request, context):
        self.handled.append("GetNumber")
        if request.phone_number == "block":
            self.entered.release()
            self.release.wait(10)
        return registry_pb2.GetNumberResponse()


def serve(servicer: Servicer, **settings):
    registration = ServiceRegistration(
        [SERVICE_NAME], lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, s),
        rate_limited_methods=method_names(SERVICE_NAME, "BatchCreateNumbers"))
    resolver = StaticKeyResolver([(TENANT_A, TENANT_A_KEY), (TENANT_B, TENANT_B_KEY)], service_keys=[SERVICE_KEY])
    running, port = create_server(ServerSettings(port=0, **settings), "limits", registration, resolver)
    channel = grpc.insecure_channel(f"localhost:{port}")
    return running, channel, registry_pb2_grpc.RegistryServiceStub(channel)


def details(error: grpc.RpcError) -> dict[type, object]:
    status = rpc_status.from_call(error)
    found: dict[type, object] = {}
    for any_detail in status.details if status else ():
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if any_detail.Is(kind.DESCRIPTOR):
                message = kind()
                any_detail.Unpack(message)
                found[kind] = message
    return found


def test_token_buckets_refill_at_their_rate_and_say_how_long_to_wait():
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=3, now=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)  # refused: nothing taken
    assert buckets.take("b") == 0  # another key has its own bucket
    now[0] = 0.5
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # saved up at most `burst`


def test_callers_refused_together_are_told_to_come_back_one_token_apart():
    now = [0.0]
    buckets = TokenBuckets(rate=10, burst=4, now=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [0, 0, 0, 0]
    told = [buckets.take("a") for _ in range(4)]  # four threads of one tenant, refused at once
    assert told == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert buckets.take("b") == 0  # another tenant is not in this line
    for wait in told:  # each comes back when told and finds its token
        now[0] = wait
        assert buckets.take("a") == 0
    now[0] = 0.45
    assert buckets.take("a") == pytest.approx(0.05)  # the line is gone: the next token's time again
    now[0] = 0.46
    flood = [buckets.take("a") for _ in range(1000)]  # a caller that never waits keeps no place in line
    assert max(flood) <= (4 + 1) / 10 + 1e-9


def test_the_rate_limit_spares_service_keys():
    limit = TenantRateLimit(1, 1, now=lambda: 0.0)
    limit.check(Principal(Role.TENANT, "acme"), "/m")
    with pytest.raises(ResourceExhausted) as refused:
        limit.check(Principal(Role.TENANT, "acme"), "/m")
    assert refused.value.reason == "RATE_LIMITED" and refused.value.retry_after > timedelta(0)
    for _ in range(5):
        limit.check(Principal(Role.SERVICE), "/m")


def test_a_tenant_gets_a_bounded_number_of_bulk_calls_at_once():
    limit = TenantRateLimit(1000, 1000, concurrency=2, now=lambda: 0.0)
    acme, globex = Principal(Role.TENANT, "acme"), Principal(Role.TENANT, "globex")
    with limit.admit(acme, "/m"), limit.admit(acme, "/m"):
        with pytest.raises(ResourceExhausted) as refused, limit.admit(acme, "/m"):
            pass
        assert refused.value.reason == "RATE_LIMITED" and refused.value.retry_after > timedelta(0)
        with limit.admit(globex, "/m"), limit.admit(Principal(Role.SERVICE), "/m"):
            pass  # others are not held back by acme's calls
    with limit.admit(acme, "/m"):  # places are given back when calls end, also when they fail
        pass
    with pytest.raises(RuntimeError), limit.admit(acme, "/m"):
        raise RuntimeError("the call failed")
    with limit.admit(acme, "/m"), limit.admit(acme, "/m"):
        pass


def test_callers_refused_for_want_of_a_place_come_back_as_places_free_and_spend_no_call_rate():
    clock = [0.0]
    limit = TenantRateLimit(0.001, 3, concurrency=2, now=lambda: clock[0])  # 3 calls, then next to none
    acme = Principal(Role.TENANT, "acme")
    first, second = limit.admit(acme, "/m"), limit.admit(acme, "/m")
    first.__enter__()
    second.__enter__()

    waits = []
    for _ in range(6):  # both places taken: each refused caller is told a later moment, a place's freeing apart
        with pytest.raises(ResourceExhausted) as refused, limit.admit(acme, "/m"):
            pass
        assert refused.value.metadata["concurrent_calls"] == "2"
        waits.append(refused.value.retry_after.total_seconds())
    assert waits == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2], abs=0.002)  # calls take 0.1 s until seen

    clock[0] = 2.0
    first.__exit__(None, None, None)  # a call of 2 s: the moving average is now 0.1 + 0.2 * (2 - 0.1) = 0.48
    with limit.admit(acme, "/m"):  # the third call of the rate: the refusals spent none of it
        with pytest.raises(ResourceExhausted) as refused, limit.admit(acme, "/m"):
            pass
        # The earlier line has come and gone: one place's freeing from now, 0.48 / 2 places.
        assert refused.value.retry_after.total_seconds() == pytest.approx(0.24, abs=0.002)
    second.__exit__(None, None, None)


def test_a_tenant_over_its_bulk_rate_is_refused_with_retry_info_and_others_are_not():
    servicer = Servicer()
    running, channel, stub = serve(servicer, tenant_bulk_rate=5, tenant_bulk_burst=3)
    try:
        batch = registry_pb2.BatchCreateNumbersRequest()
        for _ in range(3):
            stub.BatchCreateNumbers(batch, metadata=auth(TENANT_A_KEY))
        with pytest.raises(grpc.RpcError) as refused:
            stub.BatchCreateNumbers(batch, metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry after" in refused.value.details()
        found = details(refused.value)
        assert found[error_details_pb2.ErrorInfo].reason == "RATE_LIMITED"
        retry_after = found[error_details_pb2.RetryInfo].retry_delay.ToTimedelta()
        assert timedelta(0) < retry_after <= timedelta(seconds=0.2) + timedelta(milliseconds=1)
        assert servicer.handled.count("BatchCreateNumbers") == 3  # the refused call never reached the service

        stub.BatchCreateNumbers(batch, metadata=auth(TENANT_B_KEY))  # another tenant: its own budget
        stub.GetNumber(registry_pb2.GetNumberRequest(), metadata=auth(TENANT_A_KEY))  # not a bulk call
        stub.BatchCreateNumbers(batch, metadata=auth(SERVICE_KEY))
        threading.Event().wait(retry_after.total_seconds())
        stub.BatchCreateNumbers(batch, metadata=auth(TENANT_A_KEY))  # waiting as told is enough
        assert servicer.handled.count("BatchCreateNumbers") == 6
    finally:
        channel.close()
        running.stop(0)


def test_a_request_over_the_size_limit_is_refused_before_the_service_sees_it():
    servicer = Servicer()
    running, channel, stub = serve(servicer, max_message_bytes=64 * 1024)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="9" * 100_000), metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert servicer.handled == []
        stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="9" * 1000), metadata=auth(TENANT_A_KEY))
    finally:
        channel.close()
        running.stop(0)


def test_calls_over_the_concurrency_limit_are_refused_at_once():
    servicer = Servicer()
    running, channel, stub = serve(servicer, max_concurrent_rpcs=2, max_workers=8)
    try:
        blocked = [stub.GetNumber.future(registry_pb2.GetNumberRequest(phone_number="block"),
                                         metadata=auth(TENANT_A_KEY), timeout=20) for _ in range(2)]
        for _ in range(2):
            assert servicer.entered.acquire(timeout=10)
        with pytest.raises(grpc.RpcError) as refused:  # refused while both slots are still taken
            stub.GetNumber(registry_pb2.GetNumberRequest(), metadata=auth(TENANT_A_KEY), timeout=20)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not servicer.release.is_set() and servicer.handled == ["GetNumber", "GetNumber"]
        servicer.release.set()
        for future in blocked:
            future.result()
        stub.GetNumber(registry_pb2.GetNumberRequest(), metadata=auth(TENANT_A_KEY))
    finally:
        servicer.release.set()
        channel.close()
        running.stop(0)


def test_requests_no_service_could_convert_or_store_are_refused_by_field():
    servicer = Servicer()
    running, channel, stub = serve(servicer)
    try:
        request = registry_pb2.BatchCreateNumbersRequest(numbers=[
            registry_pb2.NumberSpec(phone_number="+14152220123"),
            registry_pb2.NumberSpec(registrations=[
                registry_pb2.CarrierRegistration(),
                registry_pb2.CarrierRegistration(status_time={"seconds": 253402300800})]),
        ])
        with pytest.raises(grpc.RpcError) as refused:
            stub.BatchCreateNumbers(request, metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        violations = rpc_status.from_call(refused.value).details
        bad = error_details_pb2.BadRequest()
        assert any(v.Unpack(bad) for v in violations)
        assert [v.field for v in bad.field_violations] == ["numbers[1].registrations[1].status_time"]
        with pytest.raises(grpc.RpcError) as refused:
            stub.TransitionNumber(registry_pb2.TransitionNumberRequest(rest_until={"seconds": 1, "nanos": -1}),
                                  metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "rest_until" in refused.value.details()
        with pytest.raises(grpc.RpcError) as refused:  # PostgreSQL text cannot hold it: refused on both databases
            stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+1415\x00"), metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "phone_number" in refused.value.details()
        assert servicer.handled == []
        request.numbers[1].registrations[1].status_time.seconds = 253402300799  # the last second allowed
        stub.BatchCreateNumbers(request, metadata=auth(TENANT_A_KEY))
    finally:
        channel.close()
        running.stop(0)


def test_a_request_with_more_list_entries_than_allowed_is_refused_unread():
    servicer = Servicer()
    running, channel, stub = serve(servicer, max_request_entries=1_000)
    try:
        spec = registry_pb2.NumberSpec(phone_number="+14152220123", campaign_ids=["c"] * 600)
        fits = registry_pb2.BatchCreateNumbersRequest(numbers=[spec])
        stub.BatchCreateNumbers(fits, metadata=auth(TENANT_A_KEY))
        assert servicer.handled == ["BatchCreateNumbers"]

        # 1 + 600 + 1 + 600 entries, and then a NUL the check never reaches.
        over = registry_pb2.BatchCreateNumbersRequest(numbers=[spec, spec, registry_pb2.NumberSpec(provider="\x00")])
        with pytest.raises(grpc.RpcError) as refused:
            stub.BatchCreateNumbers(over, metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == ["numbers[1].campaign_ids"]
        assert "at most 1,000" in refused.value.details()
        assert servicer.handled == ["BatchCreateNumbers"]
    finally:
        channel.close()
        running.stop(0)


def test_the_well_formed_check_names_each_bad_entry_by_its_path_at_any_depth():
    request = registry_pb2.BatchCreateNumbersRequest(numbers=[
        registry_pb2.NumberSpec(phone_number=f"+1415222{i:04d}", campaign_ids=["a", "b"], labels={"team": "west"})
        for i in range(50)])
    assert malformed_fields(request) == []
    request.numbers[3].provider = "\x00"
    request.numbers[4].labels["tier"] = "gold\x00"
    request.numbers[7].campaign_ids.append("c\x00")
    request.numbers[9].registrations.add().status_time.seconds = 10**12
    request.numbers[9].labels["k\x00"] = "v"
    assert [v.field for v in malformed_fields(request)] == [
        "numbers[3].provider", "numbers[4].labels['tier']", "numbers[7].campaign_ids[2]",
        "numbers[9].registrations[0].status_time", "numbers[9].labels['k\\x00']"]
    # 50 numbers, 103 campaign ids, 52 labels and a registration: 204 entries in all.
    assert len(malformed_fields(request, max_entries=204)) == 5
    assert malformed_fields(request, max_entries=203)[-1].field == "numbers[49].campaign_ids"
    assert [v.field for v in malformed_fields(request, max_entries=60)] == [
        "numbers[3].provider", "numbers[3].campaign_ids"]  # what was found before the budget ran out, and where


def test_an_error_with_more_violations_than_trailers_hold_sends_the_first_and_counts_all():
    violations = [FieldViolation(f"numbers[{i}].phone_number", "must be E.164 " + "é" * 300) for i in range(5_000)]
    status = InvalidArgument.for_fields(violations).to_status()
    trailers = dict(status.trailing_metadata)
    proto = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    # gRPC clients drop a call whose trailers pass 8-16 KiB: the call would fail RESOURCE_EXHAUSTED instead.
    assert len(base64.b64encode(trailers["grpc-status-details-bin"])) + len(status.details.encode()) * 3 < 8_192
    found = {}
    for detail in proto.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                found[kind] = kind()
                detail.Unpack(found[kind])
    sent = found[error_details_pb2.BadRequest].field_violations
    assert 0 < len(sent) < 5_000
    assert [v.field for v in sent] == [f"numbers[{i}].phone_number" for i in range(len(sent))]
    assert all(len(v.description) <= 200 for v in sent)
    assert dict(found[error_details_pb2.ErrorInfo].metadata) == {
        "field_violations": "5000", "field_violations_sent": str(len(sent))}
    assert status.details.startswith("5000 invalid field(s)")


def field_violations(error: grpc.RpcError) -> list[str]:
    bad = error_details_pb2.BadRequest()
    status = rpc_status.from_call(error)
    return [v.field for d in status.details if d.Unpack(bad) for v in bad.field_violations] if status else []


def test_a_bulk_call_over_the_limit_is_refused_before_its_request_is_parsed_or_checked():
    servicer = Servicer()
    running, channel, stub = serve(servicer, tenant_bulk_rate=1, tenant_bulk_burst=1)
    raw = channel.unary_unary(f"/{SERVICE_NAME}/BatchCreateNumbers")  # sends bytes as they are
    malformed = registry_pb2.BatchCreateNumbersRequest(numbers=[registry_pb2.NumberSpec(
        registrations=[registry_pb2.CarrierRegistration(status_time={"seconds": 253402300800})])])
    try:
        with pytest.raises(grpc.RpcError) as refused:  # admitted, then parsed: not a message of the method
            raw(b"\xff\xff\xff", metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "request" in refused.value.details()
        for request in (b"\xff\xff\xff", malformed.SerializeToString()):  # over the limit: neither is looked at
            with pytest.raises(grpc.RpcError) as refused:
                raw(request, metadata=auth(TENANT_A_KEY))
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as refused:  # another tenant, within its limit: checked by field
            stub.BatchCreateNumbers(malformed, metadata=auth(TENANT_B_KEY))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "numbers[0].registrations[0].status_time" in refused.value.details()
        assert servicer.handled == []
        stub.BatchCreateNumbers(registry_pb2.BatchCreateNumbersRequest(), metadata=auth(SERVICE_KEY))
        assert servicer.handled == ["BatchCreateNumbers"]  # parsed as before once admitted
    finally:
        channel.close()
        running.stop(0)


def test_a_bucket_may_be_overdrawn_by_admitted_work_and_then_says_how_long_to_wait():
    now = [0.0]
    buckets = TokenBuckets(rate=100, burst=150, now=lambda: now[0])
    assert buckets.take("a", cost=0) == 0  # not overdrawn: nothing taken
    buckets.spend("a", 100)
    assert buckets.take("a", cost=0) == 0  # 50 left
    buckets.spend("a", 100)  # admitted with 50: 50 overdrawn
    assert buckets.take("a", cost=0) == pytest.approx(0.51)  # back to one item
    now[0] = 0.51
    assert buckets.take("a", cost=0) == 0
    buckets.spend("a", 100)  # overdrawn by 99 again; callers refused together get places 100 items apart
    told = [buckets.take("a", cost=0) for _ in range(2)]
    assert told == pytest.approx([1.0, 2.0])


def test_bulk_calls_draw_one_item_per_entry_of_their_longest_list():
    servicer = Servicer()
    running, channel, stub = serve(servicer, tenant_bulk_item_rate=100, tenant_bulk_item_burst=150)
    hundred = registry_pb2.BatchCreateNumbersRequest(numbers=[
        registry_pb2.NumberSpec(phone_number=f"+1415222{n:04d}") for n in range(100)])
    try:
        for _ in range(2):  # 150 items, then 50 left: the second call is admitted and overdraws by 50
            stub.BatchCreateNumbers(hundred, metadata=auth(TENANT_A_KEY))
        with pytest.raises(grpc.RpcError) as refused:
            stub.BatchCreateNumbers(registry_pb2.BatchCreateNumbersRequest(), metadata=auth(TENANT_A_KEY))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "items a second" in refused.value.details()
        found = details(refused.value)
        assert found[error_details_pb2.ErrorInfo].reason == "RATE_LIMITED"
        retry_after = found[error_details_pb2.RetryInfo].retry_delay.ToTimedelta()
        assert timedelta(seconds=0.3) < retry_after <= timedelta(seconds=0.52)  # 51 items at 100 a second
        stub.BatchCreateNumbers(hundred, metadata=auth(TENANT_B_KEY))  # another tenant: its own budget
        stub.BatchCreateNumbers(hundred, metadata=auth(SERVICE_KEY))  # service keys: no budget
        threading.Event().wait(retry_after.total_seconds())
        stub.BatchCreateNumbers(hundred, metadata=auth(TENANT_A_KEY))  # waiting as told is enough
        assert servicer.handled.count("BatchCreateNumbers") == 5
    finally:
        channel.close()
        running.stop(0)


class Streams(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self) -> None:
        self.read_at: list[float] = []

    def StreamCallOutcomes(self, request_iterator, context):
        for _ in request_iterator:
            self.read_at.append(time.monotonic())
        return scoring_pb2.StreamCallOutcomesResponse()


def test_a_client_stream_over_its_item_budget_is_slowed_down_not_cut_off():
    streams = Streams()
    scoring = "nhm.scoring.v1.ScoringService"
    registration = ServiceRegistration(
        [scoring], lambda s: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(streams, s),
        rate_limited_methods=method_names(scoring, "StreamCallOutcomes"))
    resolver = StaticKeyResolver([(TENANT_A, TENANT_A_KEY)], service_keys=[SERVICE_KEY])
    running, port = create_server(ServerSettings(port=0, tenant_bulk_item_rate=500, tenant_bulk_item_burst=100),
                                  "limits", registration, resolver)
    message = scoring_pb2.StreamCallOutcomesRequest(outcomes=[scoring_pb2.CallOutcome() for _ in range(100)])
    try:
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            stub.StreamCallOutcomes(iter([message] * 4), metadata=auth(TENANT_A_KEY), timeout=30)
    finally:
        running.stop(0)
    assert len(streams.read_at) == 4  # every message arrived
    # 100 items at once from a full bucket, then each next 100 waited for the budget: about 0.2 s apart.
    gaps = [b - a for a, b in zip(streams.read_at, streams.read_at[1:], strict=False)]
    assert min(gaps[1:]) >= 0.15, gaps
