"""The Remediation page: open cases by step of the seed's remediation, and overdue tasks."""

from __future__ import annotations

from dataclasses import dataclass

from nhm.remediation.v1 import remediation_pb2 as rem
from nhm_dashboard import overview
from nhm_dashboard import vocabulary as words
from nhm_dashboard.gateway import TenantApi
from nhm_dashboard.number_page import CaseView, case_view


@dataclass(frozen=True)
class StageGroup:
    stage: str
    cases: list[tuple[str, CaseView]]  # (phone, case)


@dataclass(frozen=True)
class RemediationView:
    groups: list[StageGroup]
    open_total: int
    overdue: list[overview.TaskRow]
    truncated: bool


def group_by_stage(cases: list[rem.Case]) -> list[StageGroup]:
    by_stage: dict[int, list[rem.Case]] = {}
    for case in cases:
        by_stage.setdefault(case.stage, []).append(case)
    order = list(words.STAGE_ORDER) + sorted(set(by_stage) - set(words.STAGE_ORDER))
    return [StageGroup(words.name_of(words.STAGE_NAMES, stage),
                       [(c.phone_number, case_view(c)) for c in sorted(by_stage[stage], key=lambda c: c.phone_number)])
            for stage in order if stage in by_stage]


def load(api: TenantApi, case_limit: int) -> RemediationView:
    cases = api.cases(states=[rem.CASE_STATE_OPEN], limit=case_limit + 1)
    truncated = len(cases) > case_limit
    cases = cases[:case_limit]
    overdue = api.overdue_tasks()
    phones = {c.id: c.phone_number for c in cases}
    missing = sorted({t.case_id for t in overdue} - set(phones))
    phones.update(zip(missing, api.at_once(*[lambda c=c: api.case(c).phone_number for c in missing]), strict=True))
    return RemediationView(group_by_stage(cases), len(cases), overview.task_rows(overdue, phones), truncated)
