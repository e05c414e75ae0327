"""Each number's life: which state may follow which, what each state needs, and the warm-up ramp.

    ACTIVE ──> QUARANTINED, RESTING, WARMING, RETIRED
    WARMING ─> ACTIVE, QUARANTINED, RESTING, RETIRED
    QUARANTINED ─> ACTIVE, RESTING, WARMING, RETIRED
    RESTING ─> RESTING (move the end), WARMING, RETIRED
    RETIRED: final

New numbers start ACTIVE or WARMING. A rested number warms up before it is ACTIVE again (carriers watch a
number that jumps from silence to full volume), and quarantine takes numbers out of rotation, so only the
states that place calls (ACTIVE, WARMING) can be quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from nhm_platform.errors import FailedPrecondition
from nhm_registry.commands import WarmupPlanInput
from nhm_registry.domain import LifecycleState, Number, WarmupPlan
from nhm_registry.validation import Violations

S = LifecycleState
ALLOWED: dict[LifecycleState, frozenset[LifecycleState]] = {
    S.ACTIVE: frozenset({S.QUARANTINED, S.RESTING, S.WARMING, S.RETIRED}),
    S.WARMING: frozenset({S.ACTIVE, S.QUARANTINED, S.RESTING, S.RETIRED}),
    S.QUARANTINED: frozenset({S.ACTIVE, S.RESTING, S.WARMING, S.RETIRED}),
    S.RESTING: frozenset({S.RESTING, S.WARMING, S.RETIRED}),
    S.RETIRED: frozenset(),
}
INITIAL = frozenset({S.ACTIVE, S.WARMING})
_WHY_NOT = {
    (S.RESTING, S.ACTIVE): "a rested number warms up before it is active again: move it to WARMING",
    (S.RESTING, S.QUARANTINED): "a resting number places no calls already: extend its rest or retire it",
}


@dataclass(frozen=True)
class LifecyclePolicy:
    default_plan: WarmupPlan
    max_plan_steps: int
    max_rest: timedelta


def check_allowed(current: LifecycleState, target: LifecycleState) -> None:
    """Raises FAILED_PRECONDITION when the table does not allow current -> target."""
    if target in ALLOWED[current]:
        return
    if current is S.RETIRED:
        why = "RETIRED is final"
    elif current is target:
        why = f"the number is already {target.value}"
    else:
        why = _WHY_NOT.get((current, target), f"allowed from {current.value}: "
                           + ", ".join(sorted(s.value for s in ALLOWED[current])))
    raise FailedPrecondition(f"cannot move a number from {current.value} to {target.value}: {why}",
                             reason="TRANSITION_NOT_ALLOWED",
                             metadata={"from_state": current.value, "to_state": target.value})


def warmup_plan(given: WarmupPlanInput | None, policy: LifecyclePolicy, field: str,
                violations: Violations) -> WarmupPlan:
    """The plan given, each part that is missing taken from the default plan."""
    default = policy.default_plan
    caps = tuple(given.daily_caps) if given and given.daily_caps else default.daily_caps
    step = given.step if given and given.step is not None else default.step
    if len(caps) > policy.max_plan_steps:
        violations.add(f"{field}.daily_caps", f"at most {policy.max_plan_steps} steps")
    for i, cap in enumerate(caps):
        if cap <= 0:
            violations.add(f"{field}.daily_caps[{i}]", "must be greater than 0")
        elif i and cap < caps[i - 1]:
            violations.add(f"{field}.daily_caps[{i}]", "a ramp: each step's cap is at least the one before")
    if step <= timedelta(0):
        violations.add(f"{field}.step_duration", "must be positive")
    return WarmupPlan(caps, step)


def rest_until(value: datetime | None, now: datetime, policy: LifecyclePolicy, field: str,
               violations: Violations) -> datetime | None:
    if value is None:
        violations.add(field, "required for RESTING: when the rest ends")
    elif value <= now:
        violations.add(field, "must be in the future")
    elif value - now > policy.max_rest:
        violations.add(field, f"at most {policy.max_rest.days} days ahead")
    return value


def enter(number: Number, target: LifecycleState, now: datetime, *, rest_end: datetime | None = None,
          plan: WarmupPlan | None = None) -> None:
    """Put the number in target (already checked), with what that state carries and nothing else."""
    number.state = target
    number.state_time = now
    number.rest_until = rest_end if target is S.RESTING else None
    if target is S.WARMING:
        number.warmup_plan = plan
        number.warmup_start_time = now
    else:
        number.warmup_plan = None
        number.warmup_start_time = None
