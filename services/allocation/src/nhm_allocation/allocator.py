"""AllocateNumber and ReleaseAllocation: one short transaction over allocation's own tables.

The transaction locks the prospect's row (per-prospect limits hold across replicas) and reads its recent calls,
claims the call id (a retry gets the first answer; the same id with other parameters is refused), checks the
calling window and limits, then picks: the sticky caller ID if still eligible, else each allowed local-presence
tier in turn, walking the tier's index in rotation order, and counts the call against the first number with room.
If the walk finds nothing, every member of the pool is evaluated once more, which is what the refusal reports.
The counts, the ledger row, the sticky caller ID and the stored answer are written in the same transaction. Calls
that arrive while a transaction runs are served together in the next one, each
answered only after the commit; what they share (prospects, recent calls, campaigns, candidate windows; the
counts, the ledger, answers and sticky caller IDs) is read before the first and written after the last, a few
statements for the whole batch, the counts under the database's check of every cap (batch.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy.orm import Session

from nhm_allocation import repository as repo
from nhm_allocation.batch import AllocationBatch, BatchReads, CallKey, Counting
from nhm_allocation.decision import Refusal, Tally, explain_choice, explain_fallback, explain_sticky
from nhm_allocation.eligibility import (
    Call,
    Candidate,
    Place,
    Usage,
    cap_reason,
    daily_cap,
    exclusion,
    preference,
    tier_for,
)
from nhm_allocation.enums import Carrier, Gate, Reason, Tier
from nhm_allocation.feed_conversion import policy_from_bytes
from nhm_allocation.models import idempotency
from nhm_allocation.periods import day_start, epoch, epoch_ms, hour_start, next_day_start, next_hour_start
from nhm_allocation.policy import CallingPolicy, zone_or_default
from nhm_allocation.prospect_rules import LOOKBACK, CallingRestriction, restriction
from nhm_allocation.usage_report import UsageReport, usage_report
from nhm_platform.clock import Clock
from nhm_platform.coalescing import TransactionCoalescer
from nhm_platform.db import Database
from nhm_platform.errors import Aborted, FieldViolation, InvalidArgument, NotFound
from nhm_platform.idempotency import request_id_violation
from nhm_platform.phone import InvalidPhoneNumber, PhoneNumber, Purpose, parse_phone_number

M = TypeVar("M", bound=Message)
METHOD = "AllocateNumber"
RELEASE_METHOD = "ReleaseAllocation"


@dataclass(frozen=True)
class AllocationRequest:
    campaign_id: str
    destination: str
    call_id: str
    carrier: int


@dataclass(frozen=True)
class Decision:
    considered: int
    exclusions: dict[Reason, int]
    sticky: bool
    explanation: str


@dataclass(frozen=True)
class Allocation:
    call_id: str
    caller_id: str
    display_name: str
    tier: Tier
    usage: UsageReport
    decision: Decision
    allocate_time: datetime
    staleness: timedelta | None


@dataclass(frozen=True)
class _Allocated:
    allocation: Allocation
    ledger: dict[str, Any]  # its row in the allocations table, not yet written
    stick: bool  # the caller ID becomes the prospect's sticky one
    counting: Counting | None  # how the call counts against the caller ID (None: not counted)


class NothingEligible(Exception):
    """Fail closed: no number of the campaign may take the call."""

    def __init__(self, campaign_id: str, refusal: Refusal) -> None:
        super().__init__(f"no number of campaign {campaign_id!r} may place this call now")
        self.campaign_id = campaign_id
        self.refusal = refusal


class ProspectRestricted(Exception):
    """The prospect may not be called now (calling window or per-prospect limits)."""

    def __init__(self, restriction: CallingRestriction) -> None:
        super().__init__(restriction.reason.name)
        self.restriction = restriction


@dataclass(frozen=True)
class _Pick:
    candidate: Candidate
    usage: Usage  # once the call is counted
    cap: int
    sticky: bool = False

    def counting(self, call: Call) -> Counting:
        return Counting(self.cap, call.policy.hourly_cap, self.usage)


def _has_room(candidate: Candidate, call: Call, usage: Usage) -> bool:
    return cap_reason(replace(candidate, usage=usage), call) is None


def validate_call_id(call_id: str) -> None:
    if not call_id:
        raise InvalidArgument.for_field("call_id", "required: a unique id per call, reused on retries")


class Allocator:
    def __init__(self, db: Database, clock: Clock, *, window: int,
                 staleness: Callable[[], timedelta | None] = lambda: None, coalesce_max_calls: int = 32,
                 coalesce_transactions: int = 2, coalesce_lock_wait: float = 0.05,
                 conflict_retries: int = 3, near_cap_room: int = 32) -> None:
        self._db, self._clock, self._window, self._staleness = db, clock, max(1, window), staleness
        self._near_cap_room = near_cap_room
        # Calls that arrive together share one transaction (see nhm_platform.coalescing). What they share is read
        # and written once per batch (batch.py), and that is all they write: no savepoint a call.
        self._transactions = TransactionCoalescer(db, max_calls=coalesce_max_calls,
                                                  max_transactions=coalesce_transactions, retries=conflict_retries,
                                                  lock_wait=coalesce_lock_wait, hooks=BatchReads(db, METHOD),
                                                  call_savepoints=False)

    def allocate(self, tenant_id: str, request: AllocationRequest, *, fingerprint: str,
                 respond: Callable[[Allocation], M], parse: Callable[[bytes], M]) -> M:
        violations = []
        if not request.campaign_id:
            violations.append(FieldViolation("campaign_id", "required"))
        if not request.call_id:
            violations.append(FieldViolation("call_id", "required: a unique id per call, reused on retries"))
        elif (violation := request_id_violation(request.call_id, "call_id")) is not None:
            violations.append(violation)
        if request.carrier not in Carrier._value2member_map_:
            violations.append(FieldViolation("destination_carrier", "not a known carrier"))
        try:
            destination = parse_phone_number(request.destination, Purpose.DESTINATION)
        except InvalidPhoneNumber as exc:
            violations.append(exc.violation("destination"))
        if violations:
            raise InvalidArgument.for_fields(violations)
        now = self._clock.now()

        def serve(session: Session) -> M:
            batch = AllocationBatch.of(session)
            stored = batch.claim(tenant_id, request.call_id, fingerprint)
            if stored is not None:
                return parse(stored)
            campaign = batch.campaign(tenant_id, request.campaign_id)
            if campaign is None:
                raise NotFound(f"campaign {request.campaign_id!r} not found", reason="CAMPAIGN_NOT_FOUND")
            policy = policy_from_bytes(campaign.policy)
            allocated = self._allocate(session, batch, tenant_id, campaign.campaign_id, policy, destination,
                                       Carrier(request.carrier), request.call_id, now)
            message = respond(allocated.allocation)
            batch.record(repo.Recorded(allocated.ledger, message, stick=allocated.stick), allocated.counting)
            return message

        return self._transactions.run(serve, CallKey(tenant_id, request.campaign_id, destination.e164, now,
                                                     request.call_id, fingerprint))

    def _allocate(self, session: Session, batch: AllocationBatch, tenant_id: str, campaign_id: str,
                  policy: CallingPolicy, destination: PhoneNumber, carrier: Carrier, call_id: str,
                  now: datetime) -> _Allocated:
        """The caller ID for the call, counted against its caps; its ledger row is for the batch to write with
        the answer."""
        zone = zone_or_default(destination.time_zone, policy.cap_reset_zone)
        sticky = batch.sticky(tenant_id, destination.e164)
        recent = batch.recent_calls(tenant_id, destination.e164, now - LOOKBACK)
        restricted = restriction(policy, zone, zone.key, now, recent)
        if restricted is not None:
            raise ProspectRestricted(restricted)
        place = Place(destination.country, destination.area_code, destination.exchange, destination.region)
        call = Call(now, policy, place, carrier, epoch(day_start(now, policy.reset_zone)), epoch(hour_start(now)))
        tally = Tally()
        pick = None
        if policy.sticky and sticky is not None and now - sticky.time <= policy.sticky_ttl:
            candidate = batch.member(session, tenant_id, campaign_id, sticky.phone_number)
            if candidate is not None:
                reason = exclusion(candidate, call)
                tally.consider(candidate.phone_number, reason)
                if reason is None:
                    pick = self._take_first(session, batch, tenant_id, [candidate], call, tally)
                    pick = replace(pick, sticky=True) if pick else None
        if pick is None:
            pick = self._walk(session, batch, tenant_id, campaign_id, call, tally)
        if pick is None:
            tally = Tally()
            pick = self._evaluate_pool(session, batch, tenant_id, campaign_id, call, tally)
        if pick is None:
            if policy.fallback_number:
                return self._fallback(session, batch, tenant_id, campaign_id, call, destination, call_id, tally)
            raise NothingEligible(campaign_id, self._refusal(call, tally))
        tier = tier_for(pick.candidate.place, place, policy.tiers) or Tier.ANY
        ledger = {
            "tenant_id": tenant_id, "call_id": call_id, "campaign_id": campaign_id,
            "destination": destination.e164, "destination_area_key": place.area_key,
            "phone_number": pick.candidate.phone_number, "tier": int(tier), "allocate_time": now,
            "day_start": pick.usage.day_start, "hour_start": pick.usage.hour_start, "counted": True,
            "released": False, "release_time": None,
        }
        report = usage_report(pick.candidate, policy, now, pick.usage)
        if pick.sticky and sticky is not None:
            explanation = explain_sticky(pick.candidate.phone_number, now - sticky.time)
        else:
            explanation = explain_choice(pick.candidate.phone_number, tier, report.calls_today - 1, pick.cap, tally)
        return _Allocated(Allocation(
            call_id=call_id, caller_id=pick.candidate.phone_number, display_name=pick.candidate.display_name,
            tier=tier, usage=report,
            decision=Decision(tally.size, dict(tally.excluded), pick.sticky, explanation),
            allocate_time=now, staleness=self._staleness()), ledger, stick=True, counting=pick.counting(call))

    def _take_first(self, session: Session, batch: AllocationBatch, tenant_id: str, eligible: list[Candidate],
                    call: Call, tally: Tally) -> _Pick | None:
        """The first of the eligible candidates (each as this batch left it, under both caps) that takes the call,
        counted in memory for the batch's end to write with its other counts. A number near a cap is read again
        under its row's lock first (waiting for a transaction counting it), and passed over if it filled up."""
        straddled = False
        for candidate in eligible:
            if not batch.countable(tenant_id, candidate.phone_number, call):
                straddled = True
                continue
            cap, _ = daily_cap(candidate, call.policy, call.now)
            if not self._counts_on_its_read(batch, tenant_id, candidate, call, cap):
                fresh, held = repo.lock_usage(session, tenant_id, candidate.phone_number,
                                              keep=functools.partial(_has_room, candidate, call))
                candidate = replace(candidate, usage=fresh or candidate.usage)
                if not held:
                    tally.reclassify(None, cap_reason(candidate, call) or Reason.DAILY_CAP)
                    continue
            usage = candidate.usage.plus_call(call.day_start, call.hour_start, epoch_ms(call.now))
            return _Pick(candidate, usage, cap)
        if straddled:  # a number with room was counted earlier in this batch in another hour: after its commit
            raise Aborted("the batch counted this call's numbers in another hour; retry", reason="CONFLICT")
        return None

    def _counts_on_its_read(self, batch: AllocationBatch, tenant_id: str, candidate: Candidate, call: Call,
                            cap: int) -> bool:
        """Whether the call may count on the number as read without its lock: on SQLite always (its transaction
        holds the whole database), on a number this batch counted already (it holds the lock, or read it with
        room to spare), and on one with more room than near_cap_room."""
        if self._db.is_sqlite or batch.counts_at_end(tenant_id, candidate.phone_number):
            return True
        room = min(cap - candidate.usage.used_today(call.day_start),
                   call.policy.hourly_cap - candidate.usage.used_this_hour(call.hour_start))
        return room > self._near_cap_room

    def _walk(self, session: Session, batch: AllocationBatch, tenant_id: str, campaign_id: str, call: Call,
              tally: Tally) -> _Pick | None:
        """Each allowed tier in turn, numbers healthy everywhere before numbers healthy on this carrier only,
        least used first, a window of candidates at a time."""
        gates = [Gate.OPEN] if call.carrier is Carrier.UNSPECIFIED else [Gate.OPEN, Gate.CARRIER]
        for tier in call.policy.tiers:
            key = repo.tier_key(tier, call.destination)
            if key is None:
                continue
            for gate in gates:
                after = None
                while True:
                    window = batch.window(session, tenant_id, campaign_id, gate, tier, key, after, self._window)
                    eligible = []
                    capped_from_here = False
                    for rotation, candidate in window:
                        if tally.seen(candidate.phone_number):
                            continue
                        if (rotation[0] >= call.day_start and rotation[1] >= call.policy.daily_cap
                                and not repo.has_later_day(session, tenant_id, campaign_id, gate, tier, key,
                                                           rotation[0])):
                            # This member and every one after it in the walk are at the campaign's daily cap.
                            tally.consider(candidate.phone_number, Reason.DAILY_CAP)
                            capped_from_here = True
                            break
                        candidate = batch.seen(tenant_id, candidate)
                        reason = exclusion(candidate, call)
                        tally.consider(candidate.phone_number, reason)
                        if reason is None:
                            eligible.append(candidate)
                    # The window is in the order the database knew; the calls of this batch counted since move
                    # their numbers back.
                    eligible.sort(key=lambda candidate: candidate.rotation_key)
                    pick = self._take_first(session, batch, tenant_id, eligible, call, tally)
                    if pick is not None:
                        return pick
                    if capped_from_here or len(window) < self._window:
                        break
                    after = window[-1][0]
        return None

    def _evaluate_pool(self, session: Session, batch: AllocationBatch, tenant_id: str, campaign_id: str,
                       call: Call, tally: Tally) -> _Pick | None:
        """The whole pool, after the walk found nobody: the database counts the members alike in every rule
        (a few rows per area, however large the pool) and the rules judge one of each kind, so that a campaign
        out of capacity refuses in milliseconds, not seconds per call at 100,000 numbers. Only when some kind
        may take the call (its standing changed while the walk ran, or the database does not know yet what this
        batch counted) is every member looked at, to find it."""
        kinds = [(exclusion(like, call), members) for like, members in repo.member_kinds(
            session, tenant_id, campaign_id, destination_exchange=call.destination.exchange,
            day_start=call.day_start, hour_start=call.hour_start)]
        if any(reason is None for reason, _ in kinds):
            return self._evaluate_all(session, batch, tenant_id, campaign_id, call, tally)
        for reason, members in kinds:
            tally.consider_many(members, reason)
        return None

    def _evaluate_all(self, session: Session, batch: AllocationBatch, tenant_id: str, campaign_id: str,
                      call: Call, tally: Tally) -> _Pick | None:
        """Every member of the pool, evaluated afresh: the refusal's explanation, and a last chance for a
        number the index walk could not see (one whose standing changed while the walk ran)."""
        eligible = []
        for candidate in repo.all_members(session, tenant_id, campaign_id):
            candidate = batch.seen(tenant_id, candidate)
            reason = exclusion(candidate, call)
            tally.consider(candidate.phone_number, reason)
            if reason is None:
                eligible.append(candidate)
        return self._take_first(session, batch, tenant_id, sorted(eligible, key=lambda c: preference(c, call)),
                                call, tally)

    def _refusal(self, call: Call, tally: Tally) -> Refusal:
        retry_time = None
        if Reason.HOURLY_CAP in tally.excluded:
            retry_time = next_hour_start(call.now)
        elif tally.capped:
            retry_time = next_day_start(call.now, call.policy.reset_zone)
        return Refusal(tally.size, dict(tally.excluded), retry_time)

    def _fallback(self, session: Session, batch: AllocationBatch, tenant_id: str, campaign_id: str, call: Call,
                  destination: PhoneNumber, call_id: str, tally: Tally) -> _Allocated:
        """The campaign opted in to a fallback caller ID: hand it out, uncapped, and say so."""
        phone = call.policy.fallback_number
        ledger = {
            "tenant_id": tenant_id, "call_id": call_id, "campaign_id": campaign_id,
            "destination": destination.e164, "destination_area_key": call.destination.area_key,
            "phone_number": phone, "tier": int(Tier.FALLBACK), "allocate_time": call.now,
            "day_start": call.day_start, "hour_start": call.hour_start, "counted": False,
            "released": False, "release_time": None,
        }
        candidate = repo.number_candidate(session, tenant_id, phone)
        candidate = batch.seen(tenant_id, candidate) if candidate is not None else None
        report = (usage_report(candidate, call.policy, call.now) if candidate is not None else
                  UsageReport(phone, 0, call.policy.daily_cap, 0, call.policy.hourly_cap, None))
        return _Allocated(Allocation(
            call_id=call_id, caller_id=phone, display_name=candidate.display_name if candidate else "",
            tier=Tier.FALLBACK, usage=report,
            decision=Decision(tally.size, dict(tally.excluded), False, explain_fallback(phone, tally)),
            allocate_time=call.now, staleness=self._staleness()), ledger, stick=False, counting=None)

    def release(self, tenant_id: str, call_id: str, *, request_id: str, fingerprint: str,
                respond: Callable[[bool, UsageReport], M], parse: Callable[[bytes], M]) -> M:
        """Give back the allocation of a call that was never placed; answers (released now?, the number's usage).

        With a request id, a retry gets the first answer: a release whose reply was lost still says released.
        """
        validate_call_id(call_id)
        now = self._clock.now()
        with self._db.transaction() as session:
            if request_id:
                stored = idempotency.claim(session, tenant_id=tenant_id, request_id=request_id,
                                           method=RELEASE_METHOD, request_fingerprint=fingerprint, now=now)
                if stored is not None:
                    return parse(stored)
            entry, released = repo.release(session, tenant_id, call_id, now)
            if entry is None:
                raise NotFound(f"no allocation with call_id {call_id!r}", reason="ALLOCATION_NOT_FOUND")
            if released and entry.counted:
                repo.refund(session, tenant_id, entry.phone_number, day_start=entry.day_start,
                            hour_start=entry.hour_start)
            campaign = repo.campaign(session, tenant_id, entry.campaign_id)
            policy = policy_from_bytes(campaign.policy) if campaign else CallingPolicy()
            candidate = repo.number_candidate(session, tenant_id, entry.phone_number)
            report = (usage_report(candidate, policy, now) if candidate is not None else
                      UsageReport(entry.phone_number, 0, policy.daily_cap, 0, policy.hourly_cap, None))
            message = respond(released, report)
            if request_id:
                idempotency.complete(session, tenant_id=tenant_id, request_id=request_id, response=message)
        return message
