"""A case's life, as pure functions over a Case: they change it and say what else must happen (Effects).

    REMEDIATION: QUARANTINE ─> RESTING ─> WARMING ─> RECHECK ─> CLOSED (RESOLVED)
                                  ^          │           │
                                  └──────────┴───────────┘  flagged again: escalate (cycle + 1, longer rest)
                 after max_cycles, or still labelled after max_labelled_duration: CLOSED (RETIRED), and the
                 number is retired (auto_retire) or held in quarantine for an operator.
    WATCH (At Risk): WATCHING ─> CLOSED (RESOLVED) once Healthy; Flagged/Blocked turns it into REMEDIATION.

Steps the service does itself (quarantine, rest, warm-up, back to active, retire) are registry actions that the
scheduler carries out after the transaction commits; ``on_action_done`` moves the case on when one succeeds.
Operator steps (registration, disputes) are tasks with deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from nhm_platform.audit import FieldChange
from nhm_platform.errors import FailedPrecondition
from nhm_platform.ids import new_id
from nhm_remediation import planning, pool_guard
from nhm_remediation.business_days import add_business_days
from nhm_remediation.domain import (
    CALLING_STATES,
    REMEDIATE,
    SEVERITY,
    SYSTEM_ACTOR,
    SYSTEM_TASKS,
    AlertKind,
    BusinessProfile,
    Case,
    CaseKind,
    CaseStage,
    CaseState,
    Effects,
    HealthStatus,
    HealthView,
    LifecycleState,
    NumberView,
    RegistryAction,
    Task,
    TaskKind,
    TaskOutcome,
    TaskStatus,
)
from nhm_remediation.policy import RemediationPolicy
from nhm_remediation.pool_guard import CampaignPool


@dataclass(frozen=True)
class Situation:
    """What the service knows of the number when a case changes."""

    number: NumberView | None = None
    health: HealthView | None = None
    profile: BusinessProfile | None = None
    pools: list[CampaignPool] = field(default_factory=list)


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86_400
    return f"{days:g} days" if days >= 1 else f"{delta.total_seconds() / 3600:g} hours"


# --- Opening and joining -------------------------------------------------------------------------------------

def open_case(tenant_id: str, phone_number: str, kind: CaseKind, trigger: str, actor: str,
              policy: RemediationPolicy, situation: Situation, now: datetime) -> tuple[Case, Effects]:
    case = Case(id=new_id("case"), tenant_id=tenant_id, phone_number=phone_number, kind=kind,
                state=CaseState.OPEN,
                stage=CaseStage.QUARANTINE if kind is CaseKind.REMEDIATION else CaseStage.WATCHING,
                cycle=1, open_time=now, update_time=now, triggers=[trigger])
    effects = Effects()
    effects.event("case.opened", actor, f"{kind.value.lower()} case opened: {trigger}")
    effects.alert(AlertKind.CASE_OPENED, f"{kind.value.title()} case opened for {phone_number}: {trigger}",
                  trigger=trigger)
    if situation.number is not None and situation.number.state is LifecycleState.RETIRED:
        _close(case, CaseState.RETIRED, "the number is already retired", actor, now, effects)
        return case, effects
    _plan_operator_tasks(case, policy, situation, now, effects)
    if kind is CaseKind.REMEDIATION:
        _start_remediation(case, policy, situation, now, effects)
    elif policy.quarantine_at_risk:
        _quarantine(case, policy, situation, now, effects, hold_if_pool_short=True)
    return case, effects


def join(case: Case, trigger: str, actor: str, *, remediate: bool, escalate_if_recovering: bool,
         policy: RemediationPolicy, situation: Situation, now: datetime) -> Effects:
    """A new trigger joins the open case. ``remediate``: the trigger calls for full remediation (Flagged,
    Blocked, or an operator asking for it). ``escalate_if_recovering``: the number was flagged again while
    resting or warming."""
    effects = Effects()
    case.triggers.append(trigger)
    effects.event("case.trigger_joined", actor, trigger)
    _plan_operator_tasks(case, policy, situation, now, effects)
    if remediate and case.kind is CaseKind.WATCH:
        case.kind = CaseKind.REMEDIATION
        case.stage = CaseStage.QUARANTINE
        effects.event("case.upgraded", actor, "watch case now remediates: " + trigger)
        _start_remediation(case, policy, situation, now, effects)
    elif escalate_if_recovering and case.kind is CaseKind.REMEDIATION and case.stage in (
            CaseStage.RESTING, CaseStage.WARMING, CaseStage.RECHECK):
        _escalate(case, f"flagged again while {case.stage.value.lower()}: {trigger}", policy, situation, now,
                  effects)
    _touch(case, now)
    return effects


def _plan_operator_tasks(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime,
                         effects: Effects) -> None:
    if situation.number is not None:
        for task in planning.add_registration_tasks(case, situation.number, situation.profile, policy, now):
            effects.event("task.created", SYSTEM_ACTOR, f"registration with {task.program}", task.id)
    for task in planning.add_dispute_tasks(case, situation.health, policy, now):
        effects.event("task.created", SYSTEM_ACTOR, f"dispute with {task.source}", task.id)


def _start_remediation(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime,
                       effects: Effects) -> None:
    if case.labelled_check_time is None:
        case.labelled_check_time = case.open_time + policy.max_labelled_duration
    _add_cycle_tasks(case, now, effects)
    _quarantine(case, policy, situation, now, effects, hold_if_pool_short=False)


def _add_cycle_tasks(case: Case, now: datetime, effects: Effects) -> None:
    for kind in (TaskKind.REST, TaskKind.WARMUP, TaskKind.RECHECK):
        if case.current(kind) is None:
            task = planning.new_task(case, kind, now)
            effects.event("task.created", SYSTEM_ACTOR, f"{kind.value.lower()} (cycle {case.cycle})", task.id)


# --- Quarantine, rest, warm-up ---------------------------------------------------------------------------------

def _quarantine(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime, effects: Effects,
                *, hold_if_pool_short: bool) -> None:
    task = case.current(TaskKind.QUARANTINE)
    if task is None or task.status in (TaskStatus.SKIPPED, TaskStatus.FAILED):
        task = planning.new_task(case, TaskKind.QUARANTINE, now)
        effects.event("task.created", SYSTEM_ACTOR, "quarantine", task.id)
    elif task.status is TaskStatus.IN_PROGRESS:
        return  # already asked of the registry
    if task.status is TaskStatus.DONE:
        if case.kind is CaseKind.REMEDIATION:
            _begin_rest(case, policy, now, effects)
        return
    state = situation.number.state if situation.number is not None else None
    if state in (LifecycleState.QUARANTINED, LifecycleState.RESTING):
        _set_task(task, TaskStatus.DONE, now, effects, f"the number is already {state.value}")
        if case.kind is CaseKind.REMEDIATION:
            _begin_rest(case, policy, now, effects)
        return
    alerts = pool_guard.check(situation.pools, policy.max_resting_share)
    if alerts:
        case.pool_alerts.extend(alerts)
        held = hold_if_pool_short
        decision = ("quarantine held: an At Risk number keeps calling rather than push the pool further down"
                    if held else "quarantined anyway: a flagged or blocked number harms the pool more by calling")
        for alert in alerts:
            effects.alert(AlertKind.CAMPAIGN_SHORT_OF_NUMBERS, alert.message, campaign_id=alert.campaign_id,
                          resting_share=alert.resting_share, threshold=alert.threshold, decision=decision)
        effects.event("pool.guard", SYSTEM_ACTOR, f"{decision}; " + "; ".join(a.message for a in alerts))
        if held:
            _set_task(task, TaskStatus.SKIPPED, now, effects, decision)
            return
    _set_task(task, TaskStatus.IN_PROGRESS, now, effects, "asked the registry to quarantine the number")
    _request(case, task, LifecycleState.QUARANTINED, "remediation: quarantine " + case.triggers[-1], effects)


def _begin_rest(case: Case, policy: RemediationPolicy, now: datetime, effects: Effects) -> None:
    rest = policy.rest_for_cycle(case.cycle)
    until = now + rest
    case.stage = CaseStage.RESTING
    case.stage_until = until
    task = case.current(TaskKind.REST) or planning.new_task(case, TaskKind.REST, now)
    task.due_time = until
    _set_task(task, TaskStatus.IN_PROGRESS, now, effects, f"resting {_days(rest)} until {until.isoformat()}")
    effects.event("stage.changed", SYSTEM_ACTOR, f"resting for {_days(rest)} (cycle {case.cycle})")
    _request(case, task, LifecycleState.RESTING, f"remediation: rest {_days(rest)} (cycle {case.cycle})",
             effects, rest_until=until)


def _begin_warmup(case: Case, policy: RemediationPolicy, now: datetime, effects: Effects) -> None:
    rest_task = case.current(TaskKind.REST)
    if rest_task is not None and rest_task.is_open:
        _set_task(rest_task, TaskStatus.DONE, now, effects, "rest ended")
    case.stage = CaseStage.WARMING
    case.stage_until = now + policy.warmup_duration
    task = case.current(TaskKind.WARMUP) or planning.new_task(case, TaskKind.WARMUP, now)
    task.due_time = case.stage_until
    caps = " -> ".join(str(c) for c in policy.warmup_daily_caps)
    _set_task(task, TaskStatus.IN_PROGRESS, now, effects,
              f"warming at {caps} calls/day, {_days(policy.warmup_step_duration)} per step")
    effects.event("stage.changed", SYSTEM_ACTOR, f"warming up: {caps} calls/day")
    _request(case, task, LifecycleState.WARMING, f"remediation: warm up {caps} calls/day", effects,
             warmup_caps=policy.warmup_daily_caps, warmup_step=policy.warmup_step_duration)


def _recheck(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime, effects: Effects,
             recheck_interval: timedelta) -> None:
    case.stage = CaseStage.RECHECK
    task = case.current(TaskKind.RECHECK) or planning.new_task(case, TaskKind.RECHECK, now)
    health = situation.health
    if health is not None and health.clean:
        _set_task(task, TaskStatus.IN_PROGRESS, now, effects, "Healthy with no label: returning to ACTIVE")
        effects.event("recheck.passed", SYSTEM_ACTOR, "scoring says Healthy with no label")
        _request(case, task, LifecycleState.ACTIVE, "remediation: healthy again after warm-up", effects)
        return
    if health is not None and health.status in REMEDIATE:
        _escalate(case, f"still {health.describe()} at re-check", policy, situation, now, effects)
        return
    why = health.describe() if health is not None else "no health reported by scoring yet"
    case.stage_until = now + recheck_interval
    task.due_time = case.stage_until
    _set_task(task, TaskStatus.IN_PROGRESS, now, effects, f"not yet clean ({why}); next re-check "
              f"{case.stage_until.isoformat()}")
    effects.event("recheck.waiting", SYSTEM_ACTOR, f"not yet clean: {why}")


def _escalate(case: Case, reason: str, policy: RemediationPolicy, situation: Situation, now: datetime,
              effects: Effects) -> None:
    for kind in (TaskKind.REST, TaskKind.WARMUP, TaskKind.RECHECK):
        task = case.current(kind)
        if task is not None and task.is_open:
            status = TaskStatus.FAILED if task.status is TaskStatus.IN_PROGRESS else TaskStatus.SKIPPED
            _set_task(task, status, now, effects, reason)
    if case.cycle >= policy.max_cycles:
        recommend_retirement(case, f"flagged again after {policy.max_cycles} cycle(s) ({reason})", policy,
                             situation, now, effects)
        return
    case.cycle += 1
    effects.event("case.escalated", SYSTEM_ACTOR, f"cycle {case.cycle}: {reason}")
    effects.alert(AlertKind.CASE_ESCALATED, f"Case for {case.phone_number} escalated to cycle {case.cycle}: "
                  f"{reason}", cycle=case.cycle, reason=reason)
    _add_cycle_tasks(case, now, effects)
    state = situation.number.state if situation.number is not None else None
    if state in CALLING_STATES:
        alerts = pool_guard.check(situation.pools, policy.max_resting_share)
        if alerts:
            case.pool_alerts.extend(alerts)
            decision = "rested anyway: a number flagged again harms the pool more by calling"
            for alert in alerts:
                effects.alert(AlertKind.CAMPAIGN_SHORT_OF_NUMBERS, alert.message, campaign_id=alert.campaign_id,
                              resting_share=alert.resting_share, threshold=alert.threshold, decision=decision)
            effects.event("pool.guard", SYSTEM_ACTOR, f"{decision}; " + "; ".join(a.message for a in alerts))
    _begin_rest(case, policy, now, effects)


def recommend_retirement(case: Case, reason: str, policy: RemediationPolicy, situation: Situation,
                         now: datetime, effects: Effects) -> None:
    case.recommendation = f"retire: {reason}"
    effects.event("case.retirement_recommended", SYSTEM_ACTOR, reason)
    effects.alert(AlertKind.CASE_ESCALATED, f"Retirement recommended for {case.phone_number}: {reason}",
                  recommendation=case.recommendation)
    _close(case, CaseState.RETIRED, case.recommendation, SYSTEM_ACTOR, now, effects)
    if policy.auto_retire:
        effects.event("number.retire_requested", SYSTEM_ACTOR, "policy auto_retire: retiring the number")
        effects.actions.append(RegistryAction(task_id="", target_state=LifecycleState.RETIRED,
                                              reason=f"remediation: {reason}", request_id=f"rem:{case.id}:retire",
                                              method="retire"))
    elif situation.number is None or situation.number.state in CALLING_STATES:
        effects.event("number.held", SYSTEM_ACTOR, "quarantined until an operator retires it")
        effects.actions.append(RegistryAction(task_id="", target_state=LifecycleState.QUARANTINED,
                                              reason="remediation: retirement recommended; held out of rotation",
                                              request_id=f"rem:{case.id}:hold"))


# --- Time and registry results ---------------------------------------------------------------------------------

def on_due(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime,
           recheck_interval: timedelta) -> Effects:
    """The scheduler found the case due: check the retirement rule, end a rest, end a warm-up, re-check."""
    effects = Effects()
    if not case.is_open:
        return effects
    if case.labelled_check_time is not None and now >= case.labelled_check_time:
        case.labelled_check_time = None
        health = situation.health
        if case.kind is CaseKind.REMEDIATION and health is not None and health.labelled:
            recommend_retirement(case, f"still labelled after {_days(policy.max_labelled_duration)} "
                                 f"({health.describe()})", policy, situation, now, effects)
            _touch(case, now)
            return effects
        effects.event("check.labelled", SYSTEM_ACTOR,
                      f"no label {_days(policy.max_labelled_duration)} after opening")
    if not case.waiting and case.stage_until is not None and now >= case.stage_until:
        if case.stage is CaseStage.RESTING:
            _begin_warmup(case, policy, now, effects)
        elif case.stage is CaseStage.WARMING:
            warmup = case.current(TaskKind.WARMUP)
            if warmup is not None and warmup.is_open:
                _set_task(warmup, TaskStatus.DONE, now, effects, "warm-up finished")
            effects.event("stage.changed", SYSTEM_ACTOR, "warm-up finished: re-checking health")
            _recheck(case, policy, situation, now, effects, recheck_interval)
        elif case.stage is CaseStage.RECHECK:
            _recheck(case, policy, situation, now, effects, recheck_interval)
    _touch(case, now)
    return effects


def health_changed(case: Case, previous: HealthStatus | None, trigger: str, actor: str,
                   policy: RemediationPolicy, situation: Situation, now: datetime,
                   recheck_interval: timedelta) -> Effects:
    """Scoring reported the number's health while its case is open. A worse status joins the case (and, for a
    number flagged again while resting or warming, escalates it); a clean one may resolve it."""
    effects = Effects()
    health = situation.health
    if health is None or not case.is_open:
        return effects
    changed = previous is not health.status
    if changed:
        was = previous.value if previous is not None else "unknown"
        effects.event("health.changed", actor, f"{was} -> {health.describe()}")
        _touch(case, now)
    worsened = previous is None or SEVERITY[health.status] > SEVERITY[previous]
    if changed and worsened and health.status is not HealthStatus.HEALTHY:
        flagged_again = previous is not None and previous not in REMEDIATE and health.status in REMEDIATE
        effects.merge(join(case, trigger, actor, remediate=health.status in REMEDIATE,
                           escalate_if_recovering=flagged_again, policy=policy, situation=situation, now=now))
    elif health.clean:
        effects.merge(on_health(case, policy, situation, now, recheck_interval))
    return effects


def on_health(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime,
              recheck_interval: timedelta) -> Effects:
    """Scoring says the number is clean (Healthy, no label): a watch case resolves; a case waiting on its
    re-check resolves now instead of at the next re-check."""
    effects = Effects()
    health = situation.health
    if not case.is_open or health is None or not health.clean or case.waiting:
        return effects
    if case.kind is CaseKind.WATCH:
        quarantine = case.current(TaskKind.QUARANTINE)
        state = situation.number.state if situation.number is not None else None
        if quarantine is not None and quarantine.status is TaskStatus.DONE and state is LifecycleState.QUARANTINED:
            task = planning.new_task(case, TaskKind.RECHECK, now)
            _set_task(task, TaskStatus.IN_PROGRESS, now, effects, "Healthy again: releasing the quarantine")
            _request(case, task, LifecycleState.ACTIVE, "remediation: healthy again", effects)
        else:
            _resolve(case, "Healthy again", now, effects)
    elif case.stage is CaseStage.RECHECK:
        _recheck(case, policy, situation, now, effects, recheck_interval)
    _touch(case, now)
    return effects


def on_action_done(case: Case, action: RegistryAction, now: datetime, policy: RemediationPolicy) -> Effects:
    effects = Effects()
    task = case.task(action.task_id) if action.task_id else None
    target = action.target_state
    effects.event("number.transitioned", SYSTEM_ACTOR, f"registry: number is {target.value}", action.task_id)
    if target is LifecycleState.QUARANTINED and task is not None:
        _set_task(task, TaskStatus.DONE, now, effects, "quarantined: out of every campaign's rotation")
        if case.is_open and case.kind is CaseKind.REMEDIATION and case.stage is CaseStage.QUARANTINE:
            _begin_rest(case, policy, now, effects)
        else:
            case.waiting = False
    elif target is LifecycleState.RESTING:
        if case.is_open and case.stage is CaseStage.RESTING and task is case.current(TaskKind.REST):
            case.waiting = False
    elif target is LifecycleState.WARMING:
        if case.is_open and case.stage is CaseStage.WARMING and task is case.current(TaskKind.WARMUP):
            case.waiting = False
            case.stage_until = now + policy.warmup_duration
            if task is not None:
                task.due_time = case.stage_until
    elif (target is LifecycleState.ACTIVE and case.is_open and task is not None and task.is_open
          and task is case.current(TaskKind.RECHECK)):
        _set_task(task, TaskStatus.DONE, now, effects, "the number is ACTIVE again")
        _resolve(case, "Healthy with no label; the number is ACTIVE again", now, effects)
    _touch(case, now)
    return effects


def on_action_failed(case: Case, action: RegistryAction, error: str, now: datetime) -> Effects:
    """The registry refused a step for good: the task fails and the case waits for an operator."""
    effects = Effects()
    task = case.task(action.task_id) if action.task_id else None
    if task is not None and task.is_open:
        _set_task(task, TaskStatus.FAILED, now, effects, f"registry refused: {error}")
    effects.event("action.failed", SYSTEM_ACTOR,
                  f"registry refused {action.method} to {action.target_state.value}: {error}", action.task_id)
    if case.is_open:
        case.waiting = False
        case.stage_until = None
        case.recommendation = f"operator attention: the registry refused to move the number to " \
                              f"{action.target_state.value} ({error})"
    _touch(case, now)
    return effects


# --- Operators and the registry -------------------------------------------------------------------------------

def cancel(case: Case, reason: str, restore: bool, actor: str, policy: RemediationPolicy, now: datetime) -> Effects:
    effects = Effects()
    _close(case, CaseState.CANCELLED, f"cancelled: {reason}", actor, now, effects)
    if restore:
        # Where the number goes is decided when the step runs, from the registry's state then (the replica may
        # lag): see restore_step.
        effects.event("number.restore_requested", actor, "back to ACTIVE (through warm-up if it rested)")
        effects.actions.append(RegistryAction(task_id="", target_state=LifecycleState.ACTIVE,
                                              reason=f"remediation cancelled: {reason}",
                                              request_id=f"rem:{case.id}:restore", method="restore",
                                              warmup_caps=policy.warmup_daily_caps,
                                              warmup_step=policy.warmup_step_duration))
    return effects


def restore_step(action: RegistryAction, state: LifecycleState) -> RegistryAction | None:
    """The transition that returns a number in ``state`` towards ACTIVE for a cancelled case: quarantined or
    warming numbers go straight back; a resting one warms up first (the registry allows no RESTING -> ACTIVE);
    an active or retired one stays as it is (None)."""
    if state in (LifecycleState.QUARANTINED, LifecycleState.WARMING):
        return replace(action, method="transition", target_state=LifecycleState.ACTIVE, warmup_caps=(),
                       warmup_step=None)
    if state is LifecycleState.RESTING:
        return replace(action, method="transition", target_state=LifecycleState.WARMING)
    return None


def on_number_changed(case: Case, policy: RemediationPolicy, situation: Situation, now: datetime) -> Effects:
    """The registry's view of the number changed: plan registrations not planned yet (the number may reach
    this service after its health did), and settle registration tasks the registry now shows as registered."""
    effects = Effects()
    number = situation.number
    if not case.is_open or number is None:
        return effects
    if number.state is LifecycleState.RETIRED:
        _close(case, CaseState.RETIRED, "the number was retired in the registry", "registry", now, effects)
        return effects
    for task in case.tasks:
        status = number.registrations.get(task.program, ("", ""))
        if task.kind is TaskKind.REGISTRATION and task.is_open and status[0] == "REGISTERED":
            task.reference = task.reference or status[1]
            _set_task(task, TaskStatus.DONE, now, effects, "registered (per the registry)", "registry")
    for task in planning.add_registration_tasks(case, number, situation.profile, policy, now):
        effects.event("task.created", SYSTEM_ACTOR, f"registration with {task.program}", task.id)
    if effects.events:
        _touch(case, now)
    return effects


def on_number_retired(case: Case, now: datetime) -> Effects:
    effects = Effects()
    if case.is_open:
        _close(case, CaseState.RETIRED, "the number was retired in the registry", "registry", now, effects)
    return effects


def add_note(case: Case, note: str, actor: str, now: datetime) -> Effects:
    effects = Effects()
    effects.event("note.added", actor, note)
    _touch(case, now)
    return effects


# --- Helpers ---------------------------------------------------------------------------------------------------

def _resolve(case: Case, why: str, now: datetime, effects: Effects) -> None:
    _close(case, CaseState.RESOLVED, why, SYSTEM_ACTOR, now, effects)
    effects.alert(AlertKind.CASE_RESOLVED, f"Case for {case.phone_number} resolved: {why}", reason=why)


def _close(case: Case, state: CaseState, why: str, actor: str, now: datetime, effects: Effects) -> None:
    case.state = state
    case.stage = CaseStage.CLOSED
    case.close_time = now
    case.waiting = False
    case.stage_until = None
    case.labelled_check_time = None
    effects.drop_pending_actions = True
    for task in case.tasks:
        if task.is_open:
            _set_task(task, TaskStatus.SKIPPED, now, effects, f"case closed ({state.value.lower()})", actor)
    effects.event(f"case.{state.value.lower()}", actor, why)
    _touch(case, now)


def _set_task(task: Task, status: TaskStatus, now: datetime, effects: Effects, note: str,
              actor: str = SYSTEM_ACTOR) -> None:
    if task.status is not status:
        effects.event("task.status", actor, f"{task.describe()}: {task.status.value} -> {status.value}"
                      f" ({note})", task.id, (FieldChange("status", task.status.value, status.value),))
    task.status = status
    if task.kind in SYSTEM_TASKS:  # an operator's notes are theirs; the event keeps the reason
        task.notes = note
    task.update_time = now


def _request(case: Case, task: Task, target: LifecycleState, reason: str, effects: Effects, *,
             rest_until: datetime | None = None, warmup_caps: tuple[int, ...] = (),
             warmup_step: timedelta | None = None) -> None:
    case.waiting = True
    effects.actions.append(RegistryAction(task_id=task.id, target_state=target, reason=reason,
                                          request_id=f"rem:{task.id}:{target.value.lower()}",
                                          rest_until=rest_until, warmup_caps=warmup_caps, warmup_step=warmup_step))


def _touch(case: Case, now: datetime) -> None:
    case.update_time = now


# --- Operators updating tasks ---------------------------------------------------------------------------------

TASK_MUTABLE = ("status", "owner", "due_time", "reference", "notes", "outcome")
_OUTCOME_STATUS = {TaskOutcome.CLEARED: TaskStatus.DONE, TaskOutcome.REFUSED: TaskStatus.FAILED,
                   TaskOutcome.NEEDS_REVIEW: TaskStatus.IN_PROGRESS}


def update_task(case: Case, task: Task, changes: dict[str, Any], actor: str, policy: RemediationPolicy,
                now: datetime) -> Effects:
    """Apply an operator's change to a task. Marking a dispute or registration submitted (a reference) puts it
    in progress with a fresh review deadline; an outcome settles its status (cleared: done, refused: failed,
    needs review: in progress with a new deadline) unless the status is given too."""
    if task.kind in SYSTEM_TASKS and set(changes) - {"notes"}:
        raise FailedPrecondition(
            f"{task.kind.value.lower()} tasks are carried out by the service; only their notes can be changed",
            reason="SYSTEM_TASK")
    changes = dict(changes)
    review_days = (policy.dispute_review_business_days if task.kind is TaskKind.DISPUTE
                   else policy.registration_business_days)
    if changes.get("reference") and "status" not in changes and task.status is TaskStatus.PENDING:
        changes["status"] = TaskStatus.IN_PROGRESS
        changes.setdefault("due_time", add_business_days(now, review_days))
    outcome = changes.get("outcome")
    if outcome is not None and "status" not in changes:
        changes["status"] = _OUTCOME_STATUS[outcome]
        if outcome is TaskOutcome.NEEDS_REVIEW:
            changes.setdefault("due_time", add_business_days(now, review_days))
    effects = Effects()
    diffs = []
    fields = []
    for name in TASK_MUTABLE:
        if name not in changes:
            continue
        old, new = getattr(task, name), changes[name]
        if old == new:
            continue
        setattr(task, name, new)
        diffs.append(f"{name}: {_show(old)} -> {_show(new)}")
        fields.append(FieldChange(name, _json(old), _json(new)))
        if name == "due_time":
            task.overdue_alert_time = None  # a new deadline gets its own overdue alert
            task.overdue_reset = True
    if not diffs:
        return effects
    task.update_time = now
    effects.event("task.updated", actor, f"{task.describe()}: " + "; ".join(diffs), task.id, tuple(fields))
    if "reference" in changes and task.reference:
        effects.event(f"{task.kind.value.lower()}.submitted", actor, f"reference {task.reference}", task.id)
    if outcome is not None:
        effects.event(f"{task.kind.value.lower()}.{outcome.value.lower()}", actor, task.describe(), task.id)
    _touch(case, now)
    return effects


def _json(value: object) -> object:
    """A task field's value as the audit trail keeps it (None: no value)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


def _show(value: object) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
