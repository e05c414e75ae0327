"""Calls served in one coalesced transaction see each other as if each had committed before the next.

What a batch shares (the prospects' sticky caller IDs and recent calls, the ledger, the stored answers) is read
before its first call and written after its last (nhm_allocation/batch.py), so these tests put calls in one
batch on purpose: a first call holds the transaction (its answer is built while the test waits), the calls
queued meanwhile are served together in the next one. The replica is fed by the real service from the fake
feeds; the calls go to an Allocator on the same database, in this process. SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm_allocation import repository as repo
from nhm_allocation.allocator import AllocationRequest, Allocator, ProspectRestricted
from nhm_allocation.models import allocations, idempotency, number_usage
from nhm_allocation.servicer import allocation_to_proto
from nhm_platform.clock import FakeClock
from nhm_platform.db import Database
from nhm_platform.errors import FailedPrecondition
from nhm_platform.idempotency import fingerprint
from nhm_platform.row_scope import tenant_rows
from nhm_testing.keys import TENANT_A

SF1, SF2 = "+14158675301", "+14158675302"
PROSPECT, OTHER = "+14159020001", "+14159020002"
NOON_PT = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)


class Batched:
    """An Allocator of the service's database whose next calls can be made to share one transaction."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.allocator = Allocator(self.db, FakeClock(NOON_PT), window=16, coalesce_transactions=1)

    def allocate(self, destination: str, call_id: str, *, respond: Callable[[Any], pb.AllocateNumberResponse]
                 = allocation_to_proto) -> pb.AllocateNumberResponse:
        request = pb.AllocateNumberRequest(campaign_id="c1", destination=destination, call_id=call_id)
        with tenant_rows(TENANT_A):
            return self.allocator.allocate(TENANT_A, AllocationRequest("c1", destination, call_id, 0),
                                           fingerprint=fingerprint(request, exclude=("call_id",)), respond=respond,
                                           parse=pb.AllocateNumberResponse.FromString)

    def together(self, *calls: tuple[str, str]) -> list[Any]:
        """(destination, call id) calls served in one transaction, in this order: answers or exceptions."""
        release, holding = threading.Event(), threading.Event()

        def held(allocation: Any) -> pb.AllocateNumberResponse:
            holding.set()
            release.wait(10)
            return allocation_to_proto(allocation)

        results: list[Any] = [None] * len(calls)

        def run(i: int) -> None:
            try:
                results[i] = self.allocate(*calls[i])
            except Exception as error:  # noqa: BLE001 - the test looks at it
                results[i] = error

        holder = threading.Thread(target=lambda: self.allocate("+14159029999", "holder", respond=held))
        holder.start()
        assert holding.wait(10)
        threads = []
        for i in range(len(calls)):
            threads.append(threading.Thread(target=run, args=(i,)))
            threads[-1].start()
            deadline = time.monotonic() + 10
            while len(self.allocator._transactions._pending) < i + 1:  # queued in this order
                assert time.monotonic() < deadline
                time.sleep(0.001)
        release.set()
        for thread in [holder, *threads]:
            thread.join(20)
        return results

    def ledger(self) -> dict[str, str]:
        with tenant_rows(TENANT_A), self.db.read() as session:
            return dict(session.execute(select(allocations.c.call_id, allocations.c.phone_number).where(
                allocations.c.call_id != "holder")).all())

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture
def batched(allocation, clock):
    clock.set(NOON_PT)
    allocation.upstream.campaign("c1", max_calls_per_prospect_per_day=2, calling_window_start=(0, 0),
                                 calling_window_end=(0, 0))
    for phone in (SF1, SF2):
        allocation.upstream.number(phone)
    allocation.sync()
    batched = Batched(allocation.handle.settings.database_url)
    yield batched
    batched.close()


def test_a_prospect_called_twice_in_one_batch_keeps_its_caller_id_and_its_limit(batched, allocation):
    first, second, third, other = batched.together(
        (PROSPECT, "call-1"), (PROSPECT, "call-2"), (PROSPECT, "call-3"), (OTHER, "call-4"))
    assert not first.decision.sticky
    # the first call's caller ID is already this prospect's sticky one, and counts against its daily limit
    assert second.caller_id == first.caller_id and second.decision.sticky
    assert isinstance(third, ProspectRestricted)
    # the other prospect gets the least used number: the one the first two calls did not take
    assert {first.caller_id, other.caller_id} == {SF1, SF2}
    assert batched.ledger() == {"call-1": first.caller_id, "call-2": first.caller_id, "call-4": other.caller_id}
    assert allocation.usage(first.caller_id).calls_today == 2  # the holder took the other number, not this one
    # committed as the batch saw it: the next call to the prospect is refused by the limit, alone
    with pytest.raises(ProspectRestricted):
        batched.allocate(PROSPECT, "call-5")


def test_a_call_id_sent_twice_in_one_batch_is_answered_once(batched, allocation):
    first, retry, other = batched.together((PROSPECT, "call-1"), (PROSPECT, "call-1"), (OTHER, "call-2"))
    assert retry == first  # the retry waited for the batch's commit and read the stored answer
    assert batched.ledger() == {"call-1": first.caller_id, "call-2": other.caller_id}
    assert sum(allocation.usage(phone).calls_today for phone in (SF1, SF2)) == 3  # with the holder's call


def test_a_call_id_reused_for_another_prospect_in_one_batch_is_refused(batched):
    first, reused = batched.together((PROSPECT, "call-1"), (OTHER, "call-1"))
    assert first.caller_id in (SF1, SF2)
    assert isinstance(reused, FailedPrecondition) and "different request" in str(reused)
    assert batched.ledger() == {"call-1": first.caller_id}


def test_a_refused_call_in_a_batch_keeps_no_claim_of_its_call_id(batched):
    _, _, refused, _ = batched.together(
        (PROSPECT, "call-1"), (PROSPECT, "call-2"), (PROSPECT, "call-3"), (OTHER, "call-4"))
    assert isinstance(refused, ProspectRestricted)
    with tenant_rows(TENANT_A), batched.db.read() as session:
        claimed = set(session.execute(select(idempotency.table.c.request_id)).scalars())
    assert claimed == {"holder", "call-1", "call-2", "call-4"}
    # so the same id is a new call later: here for a prospect the limit does not hold back
    assert batched.allocate(OTHER, "call-3").caller_id in (SF1, SF2)


def take_first(batched: Batched, candidates: list[tuple[str, int]]) -> tuple[str, Any] | None:
    """The first of (number, daily cap) that takes a call now (one transaction, committed)."""
    with tenant_rows(TENANT_A), batched.db.transaction() as session:
        return repo.take_first(session, TENANT_A, candidates, day_start=1_000, hour_start=1_000, hourly_cap=5,
                               now_ms=1_000_000)


def test_taking_the_first_of_several_numbers_passes_over_a_full_one(batched):
    assert take_first(batched, [(SF1, 1), (SF2, 1)])[0] == SF1
    phone, usage = take_first(batched, [(SF1, 1), (SF2, 1)])  # SF1 is at its daily cap of 1 now
    assert (phone, usage.day_used, usage.hour_used) == (SF2, 1, 1)
    assert take_first(batched, [(SF1, 1), (SF2, 1)]) is None  # both full: nothing counted
    with tenant_rows(TENANT_A), batched.db.read() as session:
        assert repo.usage(session, TENANT_A, SF1).day_used == repo.usage(session, TENANT_A, SF2).day_used == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite: one writer, nobody else holds a row
def test_taking_the_first_of_several_numbers_passes_over_one_another_transaction_holds(batched):
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with tenant_rows(TENANT_A), batched.db.transaction() as session:
            session.execute(select(number_usage.c.phone_number).where(
                number_usage.c.phone_number == SF1).with_for_update())
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        phone, usage = take_first(batched, [(SF1, 5), (SF2, 5)])
        assert not release.is_set()  # it did not wait for the holder
    finally:
        release.set()
        holder.join(10)
    assert (phone, usage.day_used) == (SF2, 1)
    with tenant_rows(TENANT_A), batched.db.read() as session:
        assert repo.usage(session, TENANT_A, SF1).day_used == 0
