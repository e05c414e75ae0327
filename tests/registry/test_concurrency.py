"""Concurrent writers: a stale etag is ABORTED, no update is ever lost, a request id is served once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from nhm.registry.v1 import registry_pb2 as pb
from nhm.type.v1 import types_pb2 as types

SF = "+14152220123"
THREADS = 8


def test_same_etag_from_many_threads_one_wins_the_rest_are_aborted(registry):
    created = registry.create(SF)
    start = threading.Barrier(THREADS)

    def update(i):
        start.wait()
        try:
            return registry.stub.UpdateNumber(pb.UpdateNumberRequest(
                number=pb.Number(phone_number=SF, display_name=f"W{i}"), update_mask=FieldMask(paths=["display_name"]),
                etag=created.etag), metadata=registry.a).number
        except grpc.RpcError as error:
            return error.code()

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(update, range(THREADS)))
    winners = [r for r in results if isinstance(r, pb.Number)]
    assert len(winners) == 1
    assert [r for r in results if not isinstance(r, pb.Number)] == [grpc.StatusCode.ABORTED] * (THREADS - 1)
    final = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
    assert final.display_name == winners[0].display_name and final.etag == winners[0].etag


def test_read_modify_write_with_retries_loses_nothing(registry):
    """Each thread adds its own labels by read, change, write-with-etag, retrying on ABORTED."""
    registry.create(SF)
    aborted = []

    def add_labels(i):
        for j in range(3):
            while True:
                current = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
                labels = dict(current.labels)
                labels[f"t{i}-{j}"] = "x"
                try:
                    registry.stub.UpdateNumber(pb.UpdateNumberRequest(
                        number=pb.Number(phone_number=SF, labels=labels), update_mask=FieldMask(paths=["labels"]),
                        etag=current.etag), metadata=registry.a)
                    break
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.ABORTED
                    aborted.append(1)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(add_labels, range(THREADS)))
    final = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
    assert sorted(final.labels) == sorted(f"t{i}-{j}" for i in range(THREADS) for j in range(3))


def test_blind_writes_to_different_fields_never_overwrite_each_other(registry):
    """Without an etag, a write that raced another is ABORTED rather than writing back stale fields."""
    registry.create(SF)
    fields = {"display_name": pb.Number(display_name="NAME"), "provider": pb.Number(provider="Telnyx"),
              "attestation": pb.Number(attestation=types.ATTESTATION_A),
              "inbound_enabled": pb.Number(inbound_enabled=True)}
    start = threading.Barrier(len(fields))

    def write(item):
        path, values = item
        values.phone_number = SF
        start.wait()
        while True:
            try:
                return registry.stub.UpdateNumber(pb.UpdateNumberRequest(
                    number=values, update_mask=FieldMask(paths=[path])), metadata=registry.a)
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.ABORTED

    with ThreadPoolExecutor(len(fields)) as pool:
        list(pool.map(write, fields.items()))
    final = registry.stub.GetNumber(pb.GetNumberRequest(phone_number=SF), metadata=registry.a).number
    assert (final.display_name, final.provider, final.attestation, final.inbound_enabled) == (
        "NAME", "Telnyx", types.ATTESTATION_A, True)


def test_one_request_id_sent_concurrently_is_served_once(registry):
    request = pb.TransitionNumberRequest(phone_number=SF, target_state=types.LIFECYCLE_STATE_QUARANTINED,
                                         request_id="quarantine-1")
    registry.create(SF)
    start = threading.Barrier(4)

    def send(_):
        start.wait()
        while True:
            try:
                return registry.stub.TransitionNumber(request, metadata=registry.a)
            except grpc.RpcError as error:  # the first is still running: retry, as a client would
                assert error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED)

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(send, range(4)))
    assert all(r == replies[0] for r in replies)
    history = registry.stub.ListNumberTransitions(pb.ListNumberTransitionsRequest(phone_number=SF),
                                                  metadata=registry.a).transitions
    assert [t.to_state for t in history] == [types.LIFECYCLE_STATE_QUARANTINED, types.LIFECYCLE_STATE_ACTIVE]
