"""Each error class, raised from real servers' statuses with their details decoded."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.type.v1 import types_pb2 as types
from nhm_platform.errors import FailedPrecondition, ResourceExhausted, internal_status
from nhm_sdk import (
    AbortedError,
    AlreadyExistsError,
    CallingRestrictedError,
    Client,
    ClientConfig,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NhmError,
    NotFoundError,
    NothingEligibleError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from nhm_sdk._errors import error_from_parts
from nhm_testing.keys import ADMIN_KEY
from nhm_testing.services import ServiceHandle

NUMBER = "+12127364321"


def test_invalid_argument_names_the_field_and_reason(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.create_number("+1 (415) 867-5309")
    error = caught.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.field_violations] == ["number.phone_number"]
    assert error.reason and error.message
    assert isinstance(error, NhmError) and "INVALID_ARGUMENT" in str(error)


def test_an_import_with_more_bad_rows_than_one_answer_holds_still_names_them(client: Client) -> None:
    # 500 bad rows made a status of 50 KB: gRPC dropped the answer as RESOURCE_EXHAUSTED (trailers over 16 KiB).
    with pytest.raises(InvalidArgumentError) as caught:
        client.import_numbers([f"bad-{i}" for i in range(500)])
    error = caught.value
    sent = len(error.field_violations)
    assert 0 < sent < 500
    assert [v.field for v in error.field_violations] == [f"numbers[{i}].phone_number" for i in range(sent)]
    assert error.metadata == {"field_violations": "500", "field_violations_sent": str(sent)}
    assert error.message.startswith("500 invalid field(s)")
    assert client.list_numbers().to_list() == []


def test_a_number_with_more_registrations_than_programs_is_refused_by_field(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.create_number(reg.NumberSpec(
            phone_number="+14158675309",
            registrations=[reg.CarrierRegistration(program=types.REGISTRATION_PROGRAM_TMOBILE)] * 50_000))
    assert [v.field for v in caught.value.field_violations] == ["number.registrations"]
    assert "at most 4 registrations" in caught.value.field_violations[0].description


def test_not_found_already_exists_and_aborted(client: Client) -> None:
    with pytest.raises(NotFoundError):
        client.get_number(NUMBER)
    number = client.create_number(NUMBER)
    with pytest.raises(AlreadyExistsError):
        client.create_number(NUMBER)
    client.update_number(NUMBER, display_name="changed")
    with pytest.raises(AbortedError):
        client.retire_number(NUMBER, etag=number.etag)


def test_failed_precondition_for_a_forbidden_transition(client: Client) -> None:
    client.create_number(NUMBER)
    client.retire_number(NUMBER)
    with pytest.raises(FailedPreconditionError) as caught:
        client.transition_number(NUMBER, "ACTIVE")
    assert not isinstance(caught.value, CallingRestrictedError)


def test_unauthenticated_and_permission_denied(registry: ServiceHandle, make_client: Callable[..., Client],
                                               client: Client) -> None:
    stranger = make_client(registry_target=registry.address, api_key="nhm_not_a_key")
    with pytest.raises(UnauthenticatedError) as caught:
        stranger.get_tenant()
    assert caught.value.reason == "UNKNOWN_KEY"
    keyless = make_client(registry_target=registry.address, api_key=None)
    with pytest.raises(UnauthenticatedError) as missing:
        keyless.get_tenant()
    assert missing.value.reason == "MISSING_KEY"
    with pytest.raises(PermissionDeniedError):
        client.create_tenant("hooli")


def test_admin_keys_act_for_the_tenant_named_in_the_config(registry: ServiceHandle,
                                                           make_client: Callable[..., Client]) -> None:
    operator = make_client(registry_target=registry.address, api_key=ADMIN_KEY, tenant_id="acme")
    assert operator.get_tenant().id == "acme"
    operator.create_number(NUMBER)
    assert operator.get_number(NUMBER, metadata=[("x-nhm-tenant-id", "acme")]).tenant_id == "acme"


def test_unavailable_and_deadline_exceeded(client: Client, closed_port: int) -> None:
    with Client(ClientConfig(target=f"127.0.0.1:{closed_port}", api_key="k")) as nobody, \
            pytest.raises(UnavailableError):
        nobody.get_number(NUMBER, timeout=3)
    with pytest.raises(DeadlineExceededError):
        client.list_numbers(timeout=dt.timedelta(microseconds=1)).to_list()


def test_resource_exhausted_when_the_server_sheds_load(start_service: Callable[..., ServiceHandle],
                                                       make_client: Callable[..., Client]) -> None:
    from nhm_registry.app import SPEC

    busy = start_service(SPEC, max_concurrent_rpcs=1)
    client = make_client(registry_target=busy.address)
    streams = [client.watch_changes()]  # holds the only slot
    started, stop = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        while not stop.is_set():
            try:
                for _ in streams[-1]:
                    pass
            except ResourceExhaustedError:  # opened while another call (a readiness probe) held the slot
                streams.append(client.watch_changes())
            except NhmError:
                return

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(5)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get_tenant()
            except ResourceExhaustedError as exc:
                assert not isinstance(exc, NothingEligibleError)
                break
            assert time.monotonic() < deadline, "the stream never took the slot"
            time.sleep(0.05)
    finally:
        stop.set()
        streams[-1].cancel()
        holder.join(5)


# Statuses built by the servers' own error type: the details the allocation service attaches.

def _raise(error: Exception) -> NhmError:
    status = error.to_status()  # type: ignore[attr-defined]
    return error_from_parts(status.code, status.details, status.trailing_metadata)


def test_nothing_eligible_carries_the_refusal() -> None:
    refusal = alloc.AllocationRefusal(campaign_id="c1", candidates_considered=12, exclusions=[
        alloc.Exclusion(reason=alloc.EXCLUSION_REASON_DAILY_CAP, count=10),
        alloc.Exclusion(reason=alloc.EXCLUSION_REASON_FLAGGED, count=2)])
    error = _raise(ResourceExhausted("no eligible caller ID", reason="NOTHING_ELIGIBLE", details=[refusal],
                                     retry_after=dt.timedelta(minutes=5)))
    assert isinstance(error, NothingEligibleError) and isinstance(error, ResourceExhaustedError)
    assert error.refusal.candidates_considered == 12
    assert error.exclusions == {"DAILY_CAP": 10, "FLAGGED": 2}
    assert error.retry_after == dt.timedelta(minutes=5)
    assert error.reason == "NOTHING_ELIGIBLE"


def test_calling_restricted_carries_the_restriction() -> None:
    restriction = alloc.CallingRestriction(reason=alloc.CALLING_RESTRICTION_REASON_OUTSIDE_CALLING_WINDOW,
                                           time_zone="America/Chicago")
    error = _raise(FailedPrecondition("outside calling hours", details=[restriction]))
    assert isinstance(error, CallingRestrictedError) and isinstance(error, FailedPreconditionError)
    assert error.restriction.time_zone == "America/Chicago"
    assert error.detail(alloc.CallingRestriction) == restriction


def test_internal_and_unknown_statuses() -> None:
    status = internal_status()
    internal = error_from_parts(status.code, status.details, status.trailing_metadata)
    assert isinstance(internal, InternalError) and "internal error" in internal.message
    assert isinstance(error_from_parts(grpc.StatusCode.UNKNOWN, "?", None), InternalError)
    bare = error_from_parts(grpc.StatusCode.UNAVAILABLE, "connection refused", ())
    assert isinstance(bare, UnavailableError) and bare.details == [] and bare.reason == "UNAVAILABLE"
