"""Numbers through a real server: create (one and in bulk), get, update with a mask and an etag, list."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import create_engine, text

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types

SF = "+14152220123"


def test_create_normalises_derives_and_reads_back(registry):
    created = registry.create(
        SF, display_name="ACME SALES", provider="Twilio", attestation=types.ATTESTATION_A, inbound_enabled=True,
        labels={"team": "west"},
        registrations=[pb.CarrierRegistration(program=types.REGISTRATION_PROGRAM_TMOBILE,
                                              status=types.REGISTRATION_STATUS_REGISTERED, reference="TM-1")])
    assert (created.phone_number, created.tenant_id, created.country, created.area_code, created.exchange,
            created.region, created.time_zone) == (SF, "acme", "US", "415", "222", "CA", "America/Los_Angeles")
    assert created.state == types.LIFECYCLE_STATE_ACTIVE and created.etag
    assert created.registrations[0].status_time.seconds  # stamped when the status is not NOT_REGISTERED
    assert created.create_time == created.update_time == created.state_time
    got = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
    assert got == created
    history = registry.stub.ListNumberTransitions(pb.ListNumberTransitionsRequest(phone_number=SF),
                                                  metadata=registry.a).transitions
    assert [(t.from_state, t.to_state, t.reason) for t in history] == [
        (types.LIFECYCLE_STATE_UNSPECIFIED, types.LIFECYCLE_STATE_ACTIVE, "created")]


@pytest.mark.parametrize("raw, why", [
    ("", "required"),
    ("4155550123", "E.164"),
    ("+1 415 555 0123", "E.164"),
    ("+14152220123\u200e", "E.164"),          # invisible direction mark
    ("+14152220123;ext=2", "E.164"),
    ("+14155550100", "fictional"),             # 555-01xx
    ("+19002220123", "premium"),               # premium rate: cannot be a caller ID
    ("+18002220199", "toll-free"),             # not geographic
    ("+1415555012", "valid"),                  # too short for NANP
])
def test_invalid_numbers_are_refused_with_the_field_and_why(registry, raw, why):
    error = registry.error(lambda: registry.create(raw))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    found = registry.violations(error)
    assert list(found) == ["number.phone_number"]
    assert why in found["number.phone_number"]


def test_create_refuses_duplicates_and_bad_fields_and_keeps_nothing(registry):
    registry.create(SF)
    error = registry.error(lambda: registry.create(SF))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    error = registry.error(lambda: registry.create(
        "+14152220124", display_name="X" * 16, attestation=99, labels={"Bad Key": "v"},
        warmup_plan=pb.WarmupPlan(daily_caps=[10]),
        registrations=[pb.CarrierRegistration(), pb.CarrierRegistration(program=types.REGISTRATION_PROGRAM_ATT,
                                                                         status=42)]))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(registry.violations(error)) == {
        "number.display_name", "number.attestation", "number.labels['Bad Key']", "number.warmup_plan",
        "number.registrations[0].program", "number.registrations[1].status"}
    listed = registry.stub.ListNumbers(pb.ListNumbersRequest(), metadata=registry.a).numbers
    assert [n.phone_number for n in listed] == [SF]


def test_create_warming_gets_the_default_plan_or_the_given_one(registry):
    default = registry.create(SF, start_warming=True)
    assert default.state == types.LIFECYCLE_STATE_WARMING
    assert list(default.warmup_plan.daily_caps) == [20, 40, 60, 100]
    assert default.warmup_plan.step_duration == Duration(seconds=3 * 86400)
    assert default.warmup_start_time == default.create_time
    given = registry.create("+14152220124", start_warming=True,
                            warmup_plan=pb.WarmupPlan(daily_caps=[10, 50], step_duration=Duration(seconds=86400)))
    assert list(given.warmup_plan.daily_caps) == [10, 50] and given.warmup_plan.step_duration.seconds == 86400
    error = registry.error(lambda: registry.create("+14152220125", start_warming=True,
                                                   warmup_plan=pb.WarmupPlan(daily_caps=[50, 10, 0])))
    assert set(registry.violations(error)) == {"number.warmup_plan.daily_caps[1]", "number.warmup_plan.daily_caps[2]"}


def test_batch_of_ten_thousand_with_bad_rows_stores_nothing_and_names_every_bad_row(registry):
    specs = [pb.NumberSpec(phone_number=registry.phone(i), labels={"batch": "1"}) for i in range(10_000)]
    specs[17].phone_number = "+1415555"            # too short
    specs[4242].phone_number = "+14155550100"      # fictional
    specs[9999].phone_number = registry.phone(3)   # a repeat of row 3
    specs[5000].labels["Nope"] = "x"
    started = time.perf_counter()
    error = registry.error(lambda: registry.stub.BatchCreateNumbers(
        pb.BatchCreateNumbersRequest(numbers=specs), metadata=registry.a))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(registry.violations(error)) == ["numbers[17].phone_number", "numbers[4242].phone_number",
                                                "numbers[5000].labels['Nope']", "numbers[9999].phone_number"]
    assert "numbers[3]" in registry.violations(error)["numbers[9999].phone_number"]
    assert not registry.stub.ListNumbers(pb.ListNumbersRequest(), metadata=registry.a).numbers

    specs[17].phone_number = registry.phone(10_017)
    specs[4242].phone_number = registry.phone(10_042)
    specs[9999].phone_number = registry.phone(10_099)
    del specs[5000].labels["Nope"]
    created = registry.stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=specs, request_id="bulk-1"),
                                               metadata=registry.a).numbers
    assert len(created) == 10_000 and created[17].phone_number == registry.phone(10_017)
    assert time.perf_counter() - started < 60
    # A retry with the same request id gets the first answer and stores nothing twice.
    again = registry.stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=specs, request_id="bulk-1"),
                                             metadata=registry.a).numbers
    assert again == created
    # The same numbers again (new request): every row already exists.
    error = registry.error(lambda: registry.stub.BatchCreateNumbers(
        pb.BatchCreateNumbersRequest(numbers=specs[:3]), metadata=registry.a))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert list(registry.violations(error)) == [f"numbers[{i}].phone_number" for i in range(3)]
    page = registry.stub.ListNumbers(pb.ListNumbersRequest(page_size=1000, labels={"batch": "1"}),
                                     metadata=registry.a)
    assert len(page.numbers) == 1000 and page.next_page_token
    # A big import refreshes the planner's statistics (PostgreSQL may run without autovacuum).
    engine = create_engine(registry.handle.settings.database_url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            analyzed = connection.execute(text(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'numbers'")).scalar()
        else:
            analyzed = connection.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'numbers'")).scalar()
    engine.dispose()
    assert analyzed


def test_idempotent_create_returns_the_first_answer_and_refuses_reuse(registry):
    request = pb.CreateNumberRequest(number=pb.NumberSpec(phone_number=SF), request_id="r-1")
    first = registry.stub.CreateNumber(request, metadata=registry.a)
    assert registry.stub.CreateNumber(request, metadata=registry.a) == first
    other = pb.CreateNumberRequest(number=pb.NumberSpec(phone_number="+14152220124"), request_id="r-1")
    error = registry.error(lambda: registry.stub.CreateNumber(other, metadata=registry.a))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and registry.reason(error) == "REQUEST_ID_REUSED"
    # Request ids are per tenant: globex may use the same one.
    assert registry.stub.CreateNumber(request, metadata=registry.b).number.tenant_id == "globex"


def test_update_applies_only_the_mask_and_refuses_server_owned_fields(registry):
    created = registry.create(SF, display_name="OLD", provider="Twilio", labels={"a": "1"})
    until = Timestamp(seconds=1_800_000_000)
    change = pb.Number(phone_number=SF, display_name="NEW", provider="ignored", labels={"b": "2"},
                       attestation=types.ATTESTATION_B, inbound_required_until=until)
    updated = registry.stub.UpdateNumber(pb.UpdateNumberRequest(
        number=change, update_mask=FieldMask(paths=["display_name", "labels", "attestation",
                                                     "inbound_required_until"]),
        etag=created.etag), metadata=registry.a).number
    assert (updated.display_name, updated.provider, dict(updated.labels), updated.attestation) == (
        "NEW", "Twilio", {"b": "2"}, types.ATTESTATION_B)
    assert updated.inbound_required_until == until and updated.etag != created.etag
    assert registry.stub.ListNumbers(pb.ListNumbersRequest(labels={"a": "1"}), metadata=registry.a).numbers == []

    for path in ["tenant_id", "state", "etag", "create_time", "update_time", "campaign_ids", "area_code",
                 "phone_number", "rest_until"]:
        error = registry.error(lambda path=path: registry.stub.UpdateNumber(pb.UpdateNumberRequest(
            number=pb.Number(phone_number=SF, tenant_id="globex", state=types.LIFECYCLE_STATE_RETIRED),
            update_mask=FieldMask(paths=["display_name", path])), metadata=registry.a))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, path
        assert registry.violations(error).keys() == {"update_mask.paths[1]"}
    error = registry.error(lambda: registry.stub.UpdateNumber(pb.UpdateNumberRequest(
        number=pb.Number(phone_number=SF, display_name="X")), metadata=registry.a))
    assert registry.violations(error).keys() == {"update_mask"}
    # A stale etag is refused and changes nothing.
    error = registry.error(lambda: registry.stub.UpdateNumber(pb.UpdateNumberRequest(
        number=pb.Number(phone_number=SF, display_name="LOST"), update_mask=FieldMask(paths=["display_name"]),
        etag=created.etag), metadata=registry.a))
    assert error.code() is grpc.StatusCode.ABORTED
    # The warm-up plan can change only while WARMING.
    error = registry.error(lambda: registry.stub.UpdateNumber(pb.UpdateNumberRequest(
        number=pb.Number(phone_number=SF, warmup_plan=pb.WarmupPlan(daily_caps=[5])),
        update_mask=FieldMask(paths=["warmup_plan"])), metadata=registry.a))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    after = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
    assert after == updated


def test_get_unknown_or_malformed_number(registry):
    error = registry.error(lambda: registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    error = registry.error(lambda: registry.stub.GetNumber(pb.GetNumberRequest(phone_number="415"),
                                                           metadata=registry.a))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "phone_number" in registry.violations(error)
