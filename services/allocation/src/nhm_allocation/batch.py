"""What the allocations of one coalesced transaction share: read once before the first, written once after the last.

Before the batch's first call: its call ids (claimed, or their stored answers), its prospects (locked on
PostgreSQL, with their sticky caller IDs), their recent calls, their campaigns, and their sticky caller IDs as
members of the calls' campaigns, a statement each for the whole batch. During it, the candidate windows its
calls walk, each read once. After its last call: every ledger row, stored answer and sticky caller ID, the
release of the call ids of calls that failed, then every number's count (repository.count_all), a few driver
calls in all. In between, a call sees the batch as if the calls before it had written as they went: a prospect
called twice in one batch has the first call's caller ID as its sticky one and that call among its recent calls,
and a number counted by an earlier call shows that count.

Calls are counted here, in memory, and written together when the batch ends: numbers are locked only from that
statement to the commit, instead of from each call to the commit, and no call makes a round trip to count. The
database still arbitrates every cap: the counts are written only if every counted call was under its caps given
what other transactions counted meanwhile; if not, the batch rolls back and is served again from fresh reads
(nhm_platform.coalescing retries an Aborted batch), so a cap is never exceeded and nothing is counted twice. Near
a cap, where concurrent batches would often count on the same last calls, the allocator reads the number again
under its row lock before counting on it (see Allocator). A call adds its writes and its count only once it has
its answer, so a call that fails leaves nothing here, and the calls themselves write nothing: the coalescer needs
no savepoint to roll one back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nhm_allocation import repository as repo
from nhm_allocation.eligibility import Call, Candidate, Usage
from nhm_allocation.enums import Gate, Tier
from nhm_allocation.models import idempotency
from nhm_allocation.prospect_rules import LOOKBACK
from nhm_platform.db import Database
from nhm_platform.errors import Aborted
from nhm_platform.idempotency import Claim
from nhm_platform.row_scope import RowScope

_SESSION_KEY = "nhm.allocation.batch"


@dataclass(frozen=True)
class CallKey:
    """What the batch reads ahead for one call."""

    tenant_id: str
    campaign_id: str
    destination: str
    now: datetime
    call_id: str
    fingerprint: str


@dataclass
class AllocationBatch:
    stickies: dict[tuple[str, str], repo.Sticky | None] = field(default_factory=dict)
    recent: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    campaigns: dict[tuple[str, str], repo.CampaignRecord | None] = field(default_factory=dict)
    # Members of the calls' campaigns read ahead (None: not a member), and the candidate windows read so far.
    members: dict[tuple[str, str, str], Candidate | None] = field(default_factory=dict)
    windows: dict[tuple[Any, ...], list[tuple[repo.RotationKey, Candidate]]] = field(default_factory=dict)
    # Each number counted by a call of this batch: its usage since, and what the batch's end writes.
    counted: dict[tuple[str, str], Usage] = field(default_factory=dict)
    counts: dict[tuple[str, str], repo.Count] = field(default_factory=dict)
    scopes: dict[str, RowScope] = field(default_factory=dict)
    recorded: list[repo.Recorded] = field(default_factory=list)
    # What claiming each call id found (by tenant, call id and request fingerprint), the ids a call of this
    # batch claimed, and those it answered.
    claims: dict[tuple[str, str, str], Claim] = field(default_factory=dict)
    claimed: set[tuple[str, str]] = field(default_factory=set)
    answered: set[tuple[str, str]] = field(default_factory=set)

    @staticmethod
    def of(session: Session) -> AllocationBatch:
        return session.info[_SESSION_KEY]  # type: ignore[no-any-return]

    def campaign(self, tenant_id: str, campaign_id: str) -> repo.CampaignRecord | None:
        return self.campaigns[(tenant_id, campaign_id)]

    def sticky(self, tenant_id: str, destination: str) -> repo.Sticky | None:
        return self.stickies[(tenant_id, destination)]

    def member(self, session: Session, tenant_id: str, campaign_id: str, phone_number: str) -> Candidate | None:
        """The number as a member of the campaign's pool (None if it is not one), as this batch left it."""
        key = (tenant_id, campaign_id, phone_number)
        if key not in self.members:  # a sticky caller ID set by an earlier call of this batch
            self.members[key] = repo.members(session, tenant_id, campaign_id, [phone_number]).get(phone_number)
        candidate = self.members[key]
        return self.seen(tenant_id, candidate) if candidate is not None else None

    def seen(self, tenant_id: str, candidate: Candidate) -> Candidate:
        """A candidate as read, with the calls this batch counted against it."""
        usage = self.counted.get((tenant_id, candidate.phone_number))
        return replace(candidate, usage=usage) if usage is not None else candidate

    def window(self, session: Session, tenant_id: str, campaign_id: str, gate: Gate, tier: Tier, key: str,
               after: repo.RotationKey | None, limit: int) -> list[tuple[repo.RotationKey, Candidate]]:
        """repository.candidate_window, read once per batch: the members as the database orders them before this
        batch's counts (see `seen`)."""
        wanted = (tenant_id, campaign_id, gate, tier, key, after, limit)
        if wanted not in self.windows:
            self.windows[wanted] = repo.candidate_window(session, tenant_id, campaign_id, gate, tier, key, after,
                                                         limit)
        return self.windows[wanted]

    def counts_at_end(self, tenant_id: str, phone_number: str) -> bool:
        """Whether an earlier call of this batch counted on the number for the batch's end to write."""
        return (tenant_id, phone_number) in self.counts

    def countable(self, tenant_id: str, phone_number: str, call: Call) -> bool:
        """Whether this batch may count the call against the number: not if an earlier call of it counted one in
        an earlier day or hour than the call's (a batch that straddles the hour), whose count must be written
        first. A call of an earlier period than the count's (a number whose counters had already moved on, or
        another campaign's later-starting day) counts in the count's period, as plus_call counts it."""
        count = self.counts.get((tenant_id, phone_number))
        return count is None or (call.day_start <= count.day_start and call.hour_start <= count.hour_start)

    def recent_calls(self, tenant_id: str, destination: str, since: datetime) -> list[datetime]:
        return [time for time in self.recent[(tenant_id, destination)] if time > since]

    def claim(self, tenant_id: str, call_id: str, fingerprint: str) -> bytes | None:
        """None if the call id is this call's to answer; else the first call's stored answer. Raises why the id
        cannot be used, and Aborted for an id an earlier call of this batch claimed: it has no stored answer yet,
        so its retry waits for the commit."""
        key = (tenant_id, call_id)
        if key in self.claimed:
            raise Aborted(f"call_id {call_id!r} is being answered in this transaction; retry", reason="CONFLICT")
        stored = self.claims[(tenant_id, call_id, fingerprint)].result()
        if stored is None:
            self.claimed.add(key)
        return stored

    def record(self, recorded: repo.Recorded, counting: Counting | None) -> None:
        """An allocation's writes, once its answer is final; what later calls of the batch see at once.
        counting: how the call counts against its caller ID (None: not counted)."""
        ledger = recorded.ledger
        tenant_id, destination = ledger["tenant_id"], ledger["destination"]
        if counting is not None:
            self._count(tenant_id, ledger["phone_number"], counting)
        self.recorded.append(recorded)
        self.answered.add((tenant_id, ledger["call_id"]))
        self.recent[(tenant_id, destination)].append(ledger["allocate_time"])
        if recorded.stick:
            self.stickies[(tenant_id, destination)] = repo.Sticky(
                ledger["phone_number"], ledger["campaign_id"], ledger["allocate_time"])


    def _count(self, tenant_id: str, phone_number: str, counting: Counting) -> None:
        key = (tenant_id, phone_number)
        earlier = self.counts.get(key)
        calls = earlier.calls if earlier is not None else 0
        # The counters may hold at most cap - calls - 1 before the batch for this call, the calls+1-th, to be under
        # both caps.
        day_limit, hour_limit = counting.daily_cap - calls - 1, counting.hourly_cap - calls - 1
        if earlier is not None:
            day_limit, hour_limit = min(day_limit, earlier.day_limit), min(hour_limit, earlier.hour_limit)
        usage = counting.usage
        self.counts[key] = repo.Count(phone_number, calls + 1, usage.day_start, usage.hour_start, day_limit,
                                      hour_limit, usage.last_ms)
        self.counted[key] = counting.usage


@dataclass(frozen=True)
class Counting:
    """One call counted against a number: the caps it was under, and the number's usage once counted (whose day
    and hour are those the call counts in, and those its ledger row records)."""

    daily_cap: int
    hourly_cap: int
    usage: Usage


class BatchReads:
    """The coalescer's batch hooks for allocations (nhm_platform.coalescing.BatchHooks)."""

    def __init__(self, db: Database, method: str) -> None:
        self._db, self._method = db, method  # the method whose call ids the batch claims

    def begin(self, session: Session, calls: Sequence[tuple[RowScope, CallKey]]) -> None:
        batch = AllocationBatch()
        by_tenant: dict[tuple[RowScope, str], list[CallKey]] = defaultdict(list)
        for scope, key in calls:
            by_tenant[(scope, key.tenant_id)].append(key)
        for (scope, tenant_id), keys in by_tenant.items():
            self._db.use_row_scope(session, scope)
            batch.scopes[tenant_id] = scope
            claims = idempotency.claim_all(session, tenant_id=tenant_id, method=self._method,
                                           requests=[(key.call_id, key.fingerprint) for key in keys],
                                           now=max(key.now for key in keys), field="call_id")
            for (call_id, fingerprint), claim in claims.items():
                batch.claims[(tenant_id, call_id, fingerprint)] = claim
            destinations = {key.destination for key in keys}
            for destination, sticky in repo.lock_prospects(session, tenant_id, destinations).items():
                batch.stickies[(tenant_id, destination)] = sticky
            since = min(key.now for key in keys) - LOOKBACK
            for destination, times in repo.recent_calls(session, tenant_id, destinations, since).items():
                batch.recent[(tenant_id, destination)] = times
            for campaign_id in {key.campaign_id for key in keys}:
                batch.campaigns[(tenant_id, campaign_id)] = repo.campaign(session, tenant_id, campaign_id)
            self._read_sticky_members(session, batch, tenant_id, keys)
        session.info[_SESSION_KEY] = batch

    @staticmethod
    def _read_sticky_members(session: Session, batch: AllocationBatch, tenant_id: str, keys: list[CallKey]) -> None:
        wanted: dict[str, set[str]] = defaultdict(set)
        for key in keys:
            sticky = batch.stickies[(tenant_id, key.destination)]
            if sticky is not None:
                wanted[key.campaign_id].add(sticky.phone_number)
        for campaign_id, phones in wanted.items():
            found = repo.members(session, tenant_id, campaign_id, phones)
            for phone in phones:
                batch.members[(tenant_id, campaign_id, phone)] = found.get(phone)

    def end(self, session: Session) -> None:
        batch: AllocationBatch = session.info.pop(_SESSION_KEY)
        by_tenant: dict[str, list[repo.Recorded]] = defaultdict(list)
        for recorded in batch.recorded:
            by_tenant[recorded.ledger["tenant_id"]].append(recorded)
        counts: dict[str, list[repo.Count]] = defaultdict(list)
        for (tenant_id, _), count in batch.counts.items():
            counts[tenant_id].append(count)
        failed: dict[str, list[str]] = defaultdict(list)  # claimed by calls that failed: free for a new call
        for tenant_id, call_id in batch.claimed - batch.answered:
            failed[tenant_id].append(call_id)
        for tenant_id in batch.scopes:
            self._db.use_row_scope(session, batch.scopes[tenant_id])
            idempotency.release_all(session, tenant_id, failed[tenant_id])
            recorded = by_tenant[tenant_id]
            if not recorded:
                continue
            repo.record_all(session, recorded)
            # Last, so that the numbers stay locked only until the commit that follows.
            if len(repo.count_all(session, tenant_id, counts[tenant_id])) < len(counts[tenant_id]):
                raise Aborted("another transaction counted calls against a number this batch counted on; retry",
                              reason="CONFLICT")

