"""Usage per number and per campaign today, and capacity planning per area code."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from nhm_allocation import capacity
from nhm_allocation import repository as repo
from nhm_allocation.eligibility import Candidate, acceptable, daily_cap, lifecycle_reason
from nhm_allocation.enums import State
from nhm_allocation.feed_conversion import policy_from_bytes
from nhm_allocation.periods import day_start
from nhm_allocation.policy import CallingPolicy
from nhm_allocation.usage_report import UsageReport, usage_report
from nhm_platform.batch_get import BatchResult, checked_phone_numbers, in_request_order
from nhm_platform.clock import Clock
from nhm_platform.db import Database
from nhm_platform.errors import InvalidArgument, NotFound
from nhm_platform.phone import InvalidPhoneNumber, parse_phone_number


@dataclass(frozen=True)
class CampaignUsage:
    campaign_id: str
    calls_today: int
    capacity_today: int
    numbers: list[UsageReport]
    next_after: str | None


class Reports:
    def __init__(self, db: Database, clock: Clock, *, max_batch_get: int) -> None:
        self._db, self._clock, self._max_batch_get = db, clock, max_batch_get

    def _policy(self, session: object, tenant_id: str, campaign_id: str) -> CallingPolicy:
        record = repo.campaign(session, tenant_id, campaign_id)  # type: ignore[arg-type]
        if record is None:
            raise NotFound(f"campaign {campaign_id!r} not found", reason="CAMPAIGN_NOT_FOUND")
        return policy_from_bytes(record.policy)

    def number_usage(self, tenant_id: str, phone_number: str, campaign_id: str) -> UsageReport:
        try:
            phone = parse_phone_number(phone_number).e164
        except InvalidPhoneNumber as exc:
            raise InvalidArgument.for_fields([exc.violation("phone_number")]) from None
        found = self._usage_of(tenant_id, [phone], campaign_id)
        if phone not in found:
            raise NotFound(f"number {phone} not found", reason="NUMBER_NOT_FOUND")
        return found[phone]

    def batch_number_usage(self, tenant_id: str, phone_numbers: Sequence[str],
                           campaign_id: str) -> BatchResult[UsageReport]:
        wanted = checked_phone_numbers(phone_numbers, self._max_batch_get)
        return in_request_order(wanted, self._usage_of(tenant_id, wanted, campaign_id))

    def _usage_of(self, tenant_id: str, phones: Sequence[str], campaign_id: str) -> dict[str, UsageReport]:
        """Usage today of the numbers found, against campaign_id's caps or else each one's first campaign's."""
        now = self._clock.now()
        with self._db.read() as session:
            candidates = repo.number_candidates(session, tenant_id, phones)
            if campaign_id:
                chosen = dict.fromkeys(candidates, campaign_id)
                policies = {campaign_id: self._policy(session, tenant_id, campaign_id)}
            else:
                chosen = repo.first_campaigns_of(session, tenant_id, list(candidates))
                policies = {c: policy_from_bytes(record.policy)
                            for c, record in repo.campaigns_by_id(session, tenant_id, set(chosen.values())).items()}
        # A number in no campaign is reported against the default policy.
        return {phone: usage_report(candidate, policies.get(chosen.get(phone, ""), CallingPolicy()), now)
                for phone, candidate in candidates.items()}

    def campaign_usage(self, tenant_id: str, campaign_id: str, after: str | None, limit: int,
                       totals: tuple[int, int] | None = None) -> CampaignUsage:
        """One page of a campaign's usage. ``totals`` (calls and capacity today) come from the listing's first
        page when given: they cost a pass over every member, and once per listing keeps reading all pages
        linear in the campaign's size."""
        if not campaign_id:
            raise InvalidArgument.for_field("campaign_id", "required")
        now = self._clock.now()
        with self._db.read() as session:
            policy = self._policy(session, tenant_id, campaign_id)
            members = repo.member_page(session, tenant_id, campaign_id, after, limit + 1)
            if totals is None:
                calls = repo.campaign_calls_since(session, tenant_id, campaign_id,
                                                  day_start(now, policy.reset_zone))
                capacity_today = sum(_capacity(group.like, policy, now) * group.members
                                     for group in repo.member_groups(session, tenant_id, campaign_id))
            else:
                calls, capacity_today = totals
        page = members[:limit]
        next_after = page[-1].phone_number if len(members) > limit else None
        return CampaignUsage(campaign_id, calls, capacity_today, [usage_report(c, policy, now) for c in page],
                             next_after)

    def capacity_plan(self, tenant_id: str, campaign_id: str, expected_daily_calls: int,
                      resting_buffer: float | None) -> capacity.Plan:
        if not campaign_id:
            raise InvalidArgument.for_field("campaign_id", "required")
        if expected_daily_calls < 0:
            raise InvalidArgument.for_field("expected_daily_calls", "must not be negative")
        buffer = capacity.DEFAULT_RESTING_BUFFER if resting_buffer is None else resting_buffer
        if not 0 <= buffer <= 10:
            raise InvalidArgument.for_field("resting_buffer", "a share between 0 and 10, e.g. 0.25")
        now = self._clock.now()
        with self._db.read() as session:
            policy = self._policy(session, tenant_id, campaign_id)
            groups = repo.member_groups(session, tenant_id, campaign_id)
            history = repo.calls_by_destination_area(session, tenant_id, campaign_id,
                                                     now - timedelta(days=capacity.HISTORY_DAYS))
        areas: dict[str, capacity.AreaCapacity] = {}

        def area(key: str, region: str = "") -> capacity.AreaCapacity:
            code = key.partition("-")[2] if "-" in key else key
            if key not in areas:
                areas[key] = capacity.AreaCapacity(code, region)
            elif region and not areas[key].region:
                areas[key].region = region
            return areas[key]

        for group in groups:
            like, members = group.like, group.members
            row = area(like.place.area_key, like.place.region)
            row.total += members
            if like.state is State.RESTING:
                row.resting += members
            elif like.state is State.WARMING:
                row.warming += members
            if not acceptable(like.health.status, policy.allow_at_risk):
                row.unhealthy += members
            contribution = _capacity(like, policy, now)
            if contribution:
                row.eligible += members
                row.daily_capacity += contribution * members
        for key in history:
            area(key)
        if expected_daily_calls:
            weights = {key: float(history.get(key, 0)) for key in areas}
            if not any(weights.values()):
                weights = {key: float(a.total) for key, a in areas.items()}
            split = capacity.split_volume(expected_daily_calls, weights)
        else:
            split = _daily_average(history)
        for key, value in split.items():
            area(key).expected_daily_calls = value
        return capacity.plan(list(areas.values()), policy.daily_cap, buffer)


def _capacity(candidate: Candidate, policy: CallingPolicy, now: datetime) -> int:
    """Today's cap of a number that may place calls (lifecycle and health), else 0."""
    if lifecycle_reason(candidate.state) is not None or not acceptable(candidate.health.status, policy.allow_at_risk):
        return 0
    cap, _ = daily_cap(candidate, policy, now)
    return cap


def _daily_average(history: dict[str, int]) -> dict[str, int]:
    result: dict[str, int] = defaultdict(int)
    for key, calls in history.items():
        result[key] = -(-calls // capacity.HISTORY_DAYS)  # ceil
    return dict(result)
