"""What the allocations of one coalesced transaction share: read once before the first, written once after the last.

Before the batch's first call: its prospects (locked on PostgreSQL, with their sticky caller IDs), their recent
calls, their campaigns, and their sticky caller IDs as members of the calls' campaigns, a statement each for the
whole batch. After its last call: every ledger row, stored answer and sticky caller ID, a few driver calls in
all. In between, a call sees the batch as if the calls before it had written as they went: a prospect called
twice in one batch has the first call's caller ID as its sticky one and that call among its recent calls, and a
number counted by an earlier call shows that count (the conditional UPDATE that takes a number still decides;
this only spares it a try bound to fail). A call adds its writes only once it has its answer, so a call that
fails leaves nothing here (nhm_platform.coalescing rolls back its own statements).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from nhm_allocation import repository as repo
from nhm_allocation.eligibility import Candidate, Usage
from nhm_allocation.prospect_rules import LOOKBACK
from nhm_platform.db import Database
from nhm_platform.errors import Aborted
from nhm_platform.row_scope import RowScope

_SESSION_KEY = "nhm.allocation.batch"


@dataclass(frozen=True)
class CallKey:
    """What the batch reads ahead for one call."""

    tenant_id: str
    campaign_id: str
    destination: str
    now: datetime


@dataclass
class AllocationBatch:
    stickies: dict[tuple[str, str], repo.Sticky | None] = field(default_factory=dict)
    recent: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    campaigns: dict[tuple[str, str], repo.CampaignRecord | None] = field(default_factory=dict)
    # Members of the calls' campaigns read ahead (None: not a member), and the usage each number counted by a
    # call of this batch has since.
    members: dict[tuple[str, str, str], Candidate | None] = field(default_factory=dict)
    counted: dict[tuple[str, str], Usage] = field(default_factory=dict)
    scopes: dict[str, RowScope] = field(default_factory=dict)
    recorded: list[repo.Recorded] = field(default_factory=list)
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
        usage = self.counted.get((tenant_id, phone_number))
        return replace(candidate, usage=usage) if candidate is not None and usage is not None else candidate

    def recent_calls(self, tenant_id: str, destination: str, since: datetime) -> list[datetime]:
        return [time for time in self.recent[(tenant_id, destination)] if time > since]

    def claimable(self, tenant_id: str, call_id: str) -> None:
        """A call id answered earlier in this batch has no stored answer yet: its retry waits for the commit."""
        if (tenant_id, call_id) in self.answered:
            raise Aborted(f"call_id {call_id!r} is being answered in this transaction; retry", reason="CONFLICT")

    def record(self, recorded: repo.Recorded, counted: Usage | None) -> None:
        """An allocation's writes, once its answer is final; what later calls of the batch see at once.
        counted: the caller ID's usage once this call counted against it (None: not counted)."""
        ledger = recorded.ledger
        tenant_id, destination = ledger["tenant_id"], ledger["destination"]
        if counted is not None:
            self.counted[(tenant_id, ledger["phone_number"])] = counted
        self.recorded.append(recorded)
        self.answered.add((tenant_id, ledger["call_id"]))
        self.recent[(tenant_id, destination)].append(ledger["allocate_time"])
        if recorded.stick:
            self.stickies[(tenant_id, destination)] = repo.Sticky(
                ledger["phone_number"], ledger["campaign_id"], ledger["allocate_time"])


class BatchReads:
    """The coalescer's batch hooks for allocations (nhm_platform.coalescing.BatchHooks)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(self, session: Session, calls: Sequence[tuple[RowScope, CallKey]]) -> None:
        batch = AllocationBatch()
        by_tenant: dict[tuple[RowScope, str], list[CallKey]] = defaultdict(list)
        for scope, key in calls:
            by_tenant[(scope, key.tenant_id)].append(key)
        for (scope, tenant_id), keys in by_tenant.items():
            self._db.use_row_scope(session, scope)
            batch.scopes[tenant_id] = scope
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
        for tenant_id, recorded in by_tenant.items():
            self._db.use_row_scope(session, batch.scopes[tenant_id])
            repo.record_all(session, recorded)

