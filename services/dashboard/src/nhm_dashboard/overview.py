"""The Overview page: what an operator checks every week, from the four services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_dashboard import vocabulary as words
from nhm_dashboard.gateway import TenantApi
from nhm_sdk import from_timestamp

RISKY = (types.HEALTH_STATUS_AT_RISK, types.HEALTH_STATUS_FLAGGED)


@dataclass(frozen=True)
class StatusTile:
    status: words.Status
    count: int
    week_ago: int

    @property
    def change(self) -> int:
        return self.count - self.week_ago


@dataclass(frozen=True)
class CallShare:
    """Today's allocated calls, and how many came from numbers that are At Risk or Flagged (Blocked apart)."""

    total: int
    risky: int
    blocked: int

    @property
    def share(self) -> float | None:
        return self.risky / self.total if self.total else None


@dataclass(frozen=True)
class ShortCampaign:
    campaign_id: str
    name: str
    eligible: int
    needed: int
    expected_daily_calls: int
    daily_capacity: int


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    case_id: str
    phone: str
    kind: str
    source: str
    owner: str
    due: datetime | None


@dataclass(frozen=True)
class Overview:
    tiles: list[StatusTile]
    total: int
    calls_today: CallShare
    answer_rate_flagged: float
    answer_rate_clean: float
    report_outbound_calls: int
    short_campaigns: list[ShortCampaign]
    campaigns_checked: int
    overdue_tasks: list[TaskRow]
    overdue_total: int


def status_tiles(counts: sco.StatusCounts, week_ago: sco.StatusCounts) -> list[StatusTile]:
    fields = {"healthy": "healthy", "at-risk": "at_risk", "flagged": "flagged", "blocked": "blocked"}
    return [StatusTile(status, getattr(counts, fields[status.key]), getattr(week_ago, fields[status.key]))
            for status in words.STATUSES]


def todays_call_share(calls_per_campaign: Iterable[int], usage: Iterable[alloc.NumberUsage],
                      status_of: Mapping[str, int]) -> CallShare:
    """Today's calls (each belongs to one campaign), and those of the At Risk, Flagged and Blocked numbers
    (usage per number: a number in several campaigns counted once)."""
    calls = {u.phone_number: u.calls_today for u in usage}
    risky = sum(n for phone, n in calls.items() if status_of.get(phone) in RISKY)
    blocked = sum(n for phone, n in calls.items() if status_of.get(phone) == types.HEALTH_STATUS_BLOCKED)
    return CallShare(total=sum(calls_per_campaign), risky=risky, blocked=blocked)


def short_campaigns(plans: Iterable[tuple[reg.Campaign, alloc.CapacityPlan | None]]) -> list[ShortCampaign]:
    short = [ShortCampaign(c.id, c.name, p.total.numbers_eligible, p.total.numbers_needed,
                           p.total.expected_daily_calls, p.total.daily_capacity)
             for c, p in plans if p is not None and p.short_of_numbers]
    return sorted(short, key=lambda s: (-s.needed, s.name))


def task_rows(tasks: Iterable[rem.Task], phone_of_case: Mapping[str, str]) -> list[TaskRow]:
    return [TaskRow(t.id, t.case_id, phone_of_case.get(t.case_id, ""), words.name_of(words.TASK_KIND_NAMES, t.kind),
                    words.SOURCE_NAMES.get(t.source, "") or words.PROGRAM_NAMES.get(t.program, ""), t.owner,
                    from_timestamp(t.due_time))
            for t in tasks]


def load(api: TenantApi, list_limit: int) -> Overview:
    """Two rounds of calls made side by side, none per number: the tenant-wide reads, then what they name
    (usage of the unhealthy numbers in batch gets, each campaign's calls and plan, the overdue tasks' cases)."""
    counts, report, campaigns, overdue, unhealthy = api.at_once(
        api.status_counts, api.weekly_report, api.campaigns, api.overdue_tasks,
        lambda: api.all_health([*RISKY, types.HEALTH_STATUS_BLOCKED]))
    status_of = {h.phone_number: h.status for h in unhealthy}
    shown = overdue[:list_limit]
    case_ids = sorted({t.case_id for t in shown})
    batches = api.batches(list(status_of))
    done = iter(api.at_once(
        *[lambda batch=batch: api.usage_of(batch) for batch in batches],
        *[lambda c=c: api.campaign_calls_today(c.id) for c in campaigns],
        *[lambda c=c: api.capacity_plan(c.id) for c in campaigns],
        *[lambda case_id=case_id: api.case(case_id).phone_number for case_id in case_ids]))
    usage = [u for found in islice(done, len(batches)) for u in found.values()]
    calls = list(islice(done, len(campaigns)))
    plans = list(zip(campaigns, islice(done, len(campaigns)), strict=True))
    phone_of_case = dict(zip(case_ids, done, strict=True))
    return Overview(
        tiles=status_tiles(counts, report.counts_week_ago),
        total=counts.total,
        calls_today=todays_call_share(calls, usage, status_of),
        answer_rate_flagged=report.answer_rate_flagged,
        answer_rate_clean=report.answer_rate_clean,
        report_outbound_calls=report.outbound_calls,
        short_campaigns=short_campaigns(plans),
        campaigns_checked=len(campaigns),
        overdue_tasks=task_rows(shown, phone_of_case),
        overdue_total=len(overdue),
    )
