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
from sqlalchemy import select, update

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
        self.clock = FakeClock(NOON_PT)
        self.allocator = Allocator(self.db, self.clock, window=16, coalesce_transactions=1)

    def allocate(self, destination: str, call_id: str, *, respond: Callable[[Any], pb.AllocateNumberResponse]
                 = allocation_to_proto) -> pb.AllocateNumberResponse:
        request = pb.AllocateNumberRequest(campaign_id="c1", destination=destination, call_id=call_id)
        with tenant_rows(TENANT_A):
            return self.allocator.allocate(TENANT_A, AllocationRequest("c1", destination, call_id, 0),
                                           fingerprint=fingerprint(request, exclude=("call_id",)), respond=respond,
                                           parse=pb.AllocateNumberResponse.FromString)

    def together(self, *calls: tuple[str, str], times: tuple[datetime, ...] = ()) -> list[Any]:
        """(destination, call id) calls served in one transaction, in this order: answers or exceptions.
        times: when each call is made (the holder's call is made at noon)."""
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
            if times:
                self.clock.set(times[i])
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


def test_an_answered_call_id_retried_and_reused_in_one_batch_is_judged_by_each_request(batched):
    answered = batched.allocate(PROSPECT, "call-1")
    retry, reused = batched.together((PROSPECT, "call-1"), (OTHER, "call-1"))
    assert retry == answered  # the stored answer
    assert isinstance(reused, FailedPrecondition) and "different request" in str(reused)
    assert batched.ledger() == {"call-1": answered.caller_id}


def test_a_refused_call_in_a_batch_keeps_no_claim_of_its_call_id(batched):
    _, _, refused, _ = batched.together(
        (PROSPECT, "call-1"), (PROSPECT, "call-2"), (PROSPECT, "call-3"), (OTHER, "call-4"))
    assert isinstance(refused, ProspectRestricted)
    with tenant_rows(TENANT_A), batched.db.read() as session:
        claimed = set(session.execute(select(idempotency.table.c.request_id)).scalars())
    assert claimed == {"holder", "call-1", "call-2", "call-4"}
    # so the same id is a new call later: here for a prospect the limit does not hold back
    assert batched.allocate(OTHER, "call-3").caller_id in (SF1, SF2)


def count(batched: Batched, *counts: repo.Count) -> bool:
    """Write counts in one transaction, committed only if all of them were under their caps (as a batch's end)."""
    class Refused(Exception):
        pass

    try:
        with tenant_rows(TENANT_A), batched.db.transaction() as session:
            if len(repo.count_all(session, TENANT_A, list(counts))) < len(counts):
                raise Refused
    except Refused:
        return False
    return True


def counters(batched: Batched, phone: str) -> tuple[int, int, int, int]:
    with tenant_rows(TENANT_A), batched.db.read() as session:
        usage = repo.usage(session, TENANT_A, phone)
    return usage.day_start, usage.day_used, usage.hour_start, usage.hour_used


DAY, HOUR = 1_000_000, 1_003_600


def test_a_batchs_counts_are_written_only_if_every_counted_call_was_under_its_caps(batched):
    # two calls on SF1 (caps 5 a day, 3 an hour: before them at most 3 and 1), one on SF2
    assert count(batched, repo.Count(SF1, 2, DAY, HOUR, 3, 1, 7), repo.Count(SF2, 1, DAY, HOUR, 4, 2, 8))
    assert counters(batched, SF1) == (DAY, 2, HOUR, 2) and counters(batched, SF2) == (DAY, 1, HOUR, 1)
    # SF1 now holds 2 of this hour: two more calls under an hourly cap of 3 (at most 1 before them) do not fit, and
    # neither number is counted
    assert not count(batched, repo.Count(SF2, 1, DAY, HOUR, 4, 2, 9), repo.Count(SF1, 2, DAY, HOUR, 3, 1, 9))
    assert counters(batched, SF1) == (DAY, 2, HOUR, 2) and counters(batched, SF2) == (DAY, 1, HOUR, 1)
    # a later hour starts its counter again (the day's goes on), whatever the earlier hour held
    assert count(batched, repo.Count(SF1, 2, DAY, HOUR + 3600, 3, 1, 10))
    assert counters(batched, SF1) == (DAY, 4, HOUR + 3600, 2)
    # and a later day both
    assert count(batched, repo.Count(SF1, 1, DAY + 86_400, HOUR + 86_400, 0, 0, 11))
    assert counters(batched, SF1) == (DAY + 86_400, 1, HOUR + 86_400, 1)
    # calls of an hour or a day the counters have left are not written, whatever room there is: they would count
    # in a period their ledger rows do not name
    assert not count(batched, repo.Count(SF1, 1, DAY + 86_400, HOUR + 86_400 - 3600, 5, 5, 12))
    assert not count(batched, repo.Count(SF1, 1, DAY, HOUR + 86_400, 5, 5, 12))
    assert counters(batched, SF1) == (DAY + 86_400, 1, HOUR + 86_400, 1)


class HeldCall:
    """A call whose batch has decided (each caller ID it chose in `chosen`) and is held open until the block ends:
    what another transaction does in the block happens between the batch's reads and its count. Its answer, once
    committed, is in `answers`."""

    def __init__(self, batched: Batched, destination: str, call_id: str) -> None:
        self.chosen: list[str] = []
        self.answers: list[pb.AllocateNumberResponse] = []
        self._decided, self._release = threading.Event(), threading.Event()

        def held(allocation: Any) -> pb.AllocateNumberResponse:
            self.chosen.append(allocation.caller_id)
            self._decided.set()
            self._release.wait(10)
            return allocation_to_proto(allocation)

        self._caller = threading.Thread(target=lambda: self.answers.append(
            batched.allocate(destination, call_id, respond=held)))

    def __enter__(self) -> HeldCall:
        self._caller.start()
        assert self._decided.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self._caller.join(20)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite: the batch holds the only writer
def test_a_batch_whose_number_another_transaction_filled_meanwhile_is_served_again(batched, allocation):
    with HeldCall(batched, PROSPECT, "call-1") as call:
        assert call.chosen == [SF1]  # counted in memory: the batch holds no lock on SF1 until it ends
        with tenant_rows(TENANT_A), batched.db.transaction() as session:  # so another transaction fills it now
            session.execute(update(number_usage).where(number_usage.c.phone_number == SF1).values(
                day_start=DAY * 10_000, day_used=10**6))
    # the batch's count found SF1 without room: rolled back and served again from fresh reads
    assert call.chosen == [SF1, SF2] and call.answers[0].caller_id == SF2
    assert counters(batched, SF1)[:2] == (DAY * 10_000, 10**6)
    assert allocation.usage(SF2).calls_today == 1
    assert batched.ledger() == {"call-1": SF2}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite: the batch holds the only writer
def test_a_batch_whose_number_another_process_counted_in_the_next_hour_is_served_again(batched, allocation):
    """A process whose clock read 20:59:59 counts after another that counted the same number at 21:00: its call
    must count where its ledger row says, never in the earlier hour's row while the counters hold the later one."""
    batched.clock.set(NOON_PT.replace(minute=30))
    for i, prospect in enumerate((OTHER, "+14159020003")):  # both numbers counted today, one call each
        batched.allocate(prospect, f"earlier-{i}")
    batched.clock.set(NOON_PT.replace(minute=59, second=59))
    next_hour = int(NOON_PT.replace(hour=21).timestamp())
    with HeldCall(batched, PROSPECT, "call-1") as call:
        phone = call.chosen[0]
        day_start, day_used, _, hour_used = counters(batched, phone)
        assert (day_used, hour_used) == (1, 1)
        other = SF2 if phone == SF1 else SF1
        with tenant_rows(TENANT_A), batched.db.transaction() as session:  # the other process's calls, one at 21:00
            session.execute(update(number_usage).where(number_usage.c.phone_number == phone).values(
                day_used=day_used + 1, hour_start=next_hour, hour_used=1))
            session.execute(update(number_usage).where(number_usage.c.phone_number == other).values(day_used=5))
    # served again from fresh reads: the same number (still the least used), counted in the hour its counters
    # hold, as its ledger row says
    assert call.chosen == [phone, phone] and call.answers[0].caller_id == phone
    assert counters(batched, phone) == (day_start, day_used + 2, next_hour, 2)
    with tenant_rows(TENANT_A), batched.db.read() as session:
        row = session.execute(select(allocations.c.day_start, allocations.c.hour_start).where(
            allocations.c.call_id == "call-1")).one()
    assert tuple(row) == (day_start, next_hour)


def test_a_batch_that_straddles_the_hour_counts_a_number_in_one_hour_only(batched, allocation):
    before, after = NOON_PT.replace(minute=59, second=59), NOON_PT.replace(hour=21, second=1)
    first, second = batched.together((PROSPECT, "call-1"), (PROSPECT, "call-2"), times=(before, after))
    # the second call waited for the first one's count to commit, then counted in the next hour, on the
    # prospect's sticky caller ID
    assert second.caller_id == first.caller_id and second.decision.sticky
    usage = allocation.usage(first.caller_id)
    assert (usage.calls_today, usage.calls_this_hour) == (2, 1)
    assert batched.ledger() == {"call-1": first.caller_id, "call-2": first.caller_id}
