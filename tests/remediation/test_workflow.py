"""The case workflow as pure functions: which steps, tasks, alerts and registry actions each change asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nhm_platform.errors import FailedPrecondition
from nhm_remediation import workflow
from nhm_remediation.domain import (
    AlertKind,
    BusinessProfile,
    CaseKind,
    CaseStage,
    CaseState,
    HealthStatus,
    HealthView,
    LifecycleState,
    NumberView,
    SourceLabel,
    TaskKind,
    TaskOutcome,
    TaskStatus,
)
from nhm_remediation.policy import DEFAULT_POLICY, RemediationPolicy
from nhm_remediation.pool_guard import CampaignPool
from nhm_remediation.workflow import Situation

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # a Monday
PHONE = "+14158670001"
RECHECK = timedelta(days=1)
SPAM = HealthView(HealthStatus.FLAGGED, (SourceLabel("HIYA", "SPAM", "Spam Likely"),
                                         SourceLabel("NOMOROBO", "MINOR", "Nuisance")))
CLEAN = HealthView(HealthStatus.HEALTHY)
PROFILE = BusinessProfile(legal_name="Acme Outbound LLC", address="1 Market St", website="https://acme.example",
                          call_purpose="B2B software sales follow-up", expected_monthly_volume=30000)


def number(state=LifecycleState.ACTIVE, registrations=None):
    return NumberView("acme", PHONE, state, attestation="B", provider="Telnyx", display_name="ACME",
                      registrations=registrations or {}, campaign_ids=("cmp-1",))


def situation(state=LifecycleState.ACTIVE, health=SPAM, pools=(), registrations=None):
    return Situation(number(state, registrations), health, PROFILE, list(pools))


def opened(policy=DEFAULT_POLICY, **kwargs):
    return workflow.open_case("acme", PHONE, CaseKind.REMEDIATION, SPAM.describe(), "service:scoring", policy,
                              situation(**kwargs), NOW)


def complete(case, effects, when, policy=DEFAULT_POLICY):
    """Report every requested registry action as done; returns the effects of the last."""
    assert effects.actions, "expected a registry action"
    result = None
    for action in effects.actions:
        result = workflow.on_action_done(case, action, when, policy)
    return result


def test_opening_quarantines_and_plans_operator_tasks():
    case, effects = opened()
    assert case.state is CaseState.OPEN and case.stage is CaseStage.QUARANTINE and case.cycle == 1
    assert case.triggers == ["Flagged: Hiya Spam Likely, Nomorobo Nuisance"]
    assert [(a.target_state, a.task_id) for a in effects.actions] == [
        (LifecycleState.QUARANTINED, case.current(TaskKind.QUARANTINE).id)]
    assert case.waiting and case.current(TaskKind.QUARANTINE).status is TaskStatus.IN_PROGRESS
    disputes = {t.source: t for t in case.tasks if t.kind is TaskKind.DISPUTE}
    assert sorted(disputes) == ["HIYA", "NOMOROBO"]
    assert all(t.due_time == datetime(2026, 1, 12, 15, 0, tzinfo=UTC) for t in disputes.values())  # 5 business days
    [registration] = [t for t in case.tasks if t.kind is TaskKind.REGISTRATION]
    assert registration.program == "FREE_CALLER_REGISTRY"
    assert registration.prefill["business_name"] == "Acme Outbound LLC"
    assert registration.prefill["use_case"] == "B2B software sales follow-up"
    assert registration.prefill["monthly_call_volume"] == "30000"
    assert registration.prefill["phone_number"] == PHONE
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_OPENED]
    assert case.labelled_check_time == NOW + timedelta(days=30)


def test_registration_per_carrier_skips_programmes_already_registered():
    policy = RemediationPolicy(use_free_caller_registry=False)
    case, _ = opened(policy, registrations={"ATT": ("REGISTERED", "att-1"), "VERIZON": ("SUBMITTED", "vz-9")})
    registrations = {t.program: t for t in case.tasks if t.kind is TaskKind.REGISTRATION}
    assert sorted(registrations) == ["TMOBILE", "VERIZON"]
    assert registrations["VERIZON"].status is TaskStatus.IN_PROGRESS and registrations["VERIZON"].reference == "vz-9"
    case, _ = opened(registrations={"FREE_CALLER_REGISTRY": ("REGISTERED", "fcr-1")})
    assert not [t for t in case.tasks if t.kind is TaskKind.REGISTRATION]


def test_full_cycle_rest_warmup_recheck_resolve():
    policy = RemediationPolicy()
    case, effects = opened(policy)
    effects = complete(case, effects, NOW)
    assert case.stage is CaseStage.RESTING and case.stage_until == NOW + timedelta(days=14)
    [rest] = effects.actions
    assert rest.target_state is LifecycleState.RESTING and rest.rest_until == NOW + timedelta(days=14)
    assert workflow.on_action_done(case, rest, NOW, policy).actions == []
    assert not case.waiting and case.next_due() == NOW + timedelta(days=14)

    assert workflow.on_due(case, policy, situation(LifecycleState.RESTING), NOW + timedelta(days=13),
                           RECHECK).actions == []
    end_of_rest = NOW + timedelta(days=14)
    effects = workflow.on_due(case, policy, situation(LifecycleState.RESTING), end_of_rest, RECHECK)
    [warm] = effects.actions
    assert warm.target_state is LifecycleState.WARMING
    assert warm.warmup_caps == (20, 40, 60, 100) and warm.warmup_step == timedelta(days=3)
    assert case.current(TaskKind.REST).status is TaskStatus.DONE
    workflow.on_action_done(case, warm, end_of_rest, policy)
    assert case.stage is CaseStage.WARMING and case.next_due() == end_of_rest + timedelta(days=12)

    end_of_warmup = end_of_rest + timedelta(days=12)
    effects = workflow.on_due(case, policy, situation(LifecycleState.WARMING, CLEAN), end_of_warmup, RECHECK)
    [activate] = effects.actions
    assert activate.target_state is LifecycleState.ACTIVE and case.stage is CaseStage.RECHECK
    effects = workflow.on_action_done(case, activate, end_of_warmup, policy)
    assert case.state is CaseState.RESOLVED and case.stage is CaseStage.CLOSED
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_RESOLVED]
    assert all(not t.is_open for t in case.tasks)  # operator tasks left open are skipped on close
    assert len({a.request_id for a in (rest, warm, activate)}) == 3


def _warming_case(policy=DEFAULT_POLICY):
    case, effects = opened(policy)
    effects = complete(case, effects, NOW, policy)
    complete(case, effects, NOW, policy)
    rest_end = case.stage_until
    effects = workflow.on_due(case, policy, situation(LifecycleState.RESTING), rest_end, RECHECK)
    complete(case, effects, rest_end, policy)
    assert case.stage is CaseStage.WARMING and case.stage_until == rest_end + timedelta(days=12)
    return case


def test_recheck_waits_while_at_risk_and_escalates_while_flagged():
    policy = RemediationPolicy()
    case = _warming_case(policy)
    at_risk = HealthView(HealthStatus.AT_RISK, (SourceLabel("HIYA", "MINOR", "Potential Spam"),))
    end = case.stage_until
    effects = workflow.on_due(case, policy, situation(LifecycleState.WARMING, at_risk), end, RECHECK)
    assert effects.actions == [] and case.stage is CaseStage.RECHECK and case.next_due() == end + RECHECK
    effects = workflow.on_due(case, policy, situation(LifecycleState.WARMING, SPAM), end + RECHECK, RECHECK)
    assert case.cycle == 2 and case.stage is CaseStage.RESTING
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_ESCALATED]


def test_flagged_again_during_warmup_escalates_with_a_longer_rest():
    policy = RemediationPolicy()
    case = _warming_case(policy)
    when = case.stage_until - timedelta(days=5)
    effects = workflow.health_changed(case, HealthStatus.HEALTHY, "Flagged: Hiya Spam Likely", "service:scoring",
                                      policy, situation(LifecycleState.WARMING, SPAM), when, RECHECK)
    assert case.cycle == 2 and case.stage is CaseStage.RESTING
    [rest] = effects.actions
    assert rest.target_state is LifecycleState.RESTING and rest.rest_until == when + timedelta(days=28)
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_ESCALATED]
    warmups = [t for t in case.tasks if t.kind is TaskKind.WARMUP]
    assert [(t.cycle, t.status) for t in warmups] == [(1, TaskStatus.FAILED), (2, TaskStatus.PENDING)]
    assert "health.changed" in [e.event_type for e in effects.events]


def test_flagged_still_without_recovery_joins_but_does_not_escalate():
    policy = RemediationPolicy()
    case = _warming_case(policy)
    blocked = HealthView(HealthStatus.BLOCKED, (SourceLabel("TNS", "BLOCKED", "Blocked"),))
    effects = workflow.health_changed(case, HealthStatus.FLAGGED, "Blocked: TNS", "service:scoring", policy,
                                      situation(LifecycleState.WARMING, blocked), NOW, RECHECK)
    assert case.cycle == 1 and case.triggers[-1] == "Blocked: TNS"
    assert [t.source for t in case.tasks if t.kind is TaskKind.DISPUTE] == ["HIYA", "NOMOROBO", "TNS"]
    assert effects.actions == []


@pytest.mark.parametrize("auto_retire", [False, True])
def test_after_max_cycles_retirement_is_recommended(auto_retire):
    policy = RemediationPolicy(max_cycles=1, auto_retire=auto_retire)
    case = _warming_case(policy)
    effects = workflow.health_changed(case, HealthStatus.HEALTHY, "Flagged: Hiya", "service:scoring", policy,
                                      situation(LifecycleState.WARMING, SPAM), NOW, RECHECK)
    assert case.state is CaseState.RETIRED and case.recommendation.startswith("retire: flagged again after 1")
    assert effects.drop_pending_actions
    [action] = effects.actions
    if auto_retire:
        assert action.method == "retire" and action.target_state is LifecycleState.RETIRED
    else:  # held out of rotation until an operator retires it
        assert action.method == "transition" and action.target_state is LifecycleState.QUARANTINED
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_ESCALATED]


def test_still_labelled_after_max_time_retires():
    policy = RemediationPolicy(max_labelled_duration=timedelta(days=10), auto_retire=True)
    case, effects = opened(policy)
    complete(case, complete(case, effects, NOW, policy), NOW, policy)
    assert case.next_due() == NOW + timedelta(days=10)
    effects = workflow.on_due(case, policy, situation(LifecycleState.RESTING, SPAM), NOW + timedelta(days=10),
                              RECHECK)
    assert case.state is CaseState.RETIRED and "still labelled after 10 days" in case.recommendation
    assert [a.method for a in effects.actions] == ["retire"]


def test_labelled_check_passes_when_labels_are_gone():
    policy = RemediationPolicy(max_labelled_duration=timedelta(days=10))
    case, effects = opened(policy)
    complete(case, complete(case, effects, NOW, policy), NOW, policy)
    workflow.on_due(case, policy, situation(LifecycleState.RESTING, CLEAN), NOW + timedelta(days=10), RECHECK)
    assert case.is_open and case.labelled_check_time is None and case.next_due() == NOW + timedelta(days=14)


def test_watch_case_does_not_quarantine_and_resolves_when_healthy():
    at_risk = HealthView(HealthStatus.AT_RISK, (SourceLabel("HIYA", "MINOR", "Potential Spam"),))
    policy = RemediationPolicy()
    case, effects = workflow.open_case("acme", PHONE, CaseKind.WATCH, "At Risk", "service:scoring", policy,
                                       situation(health=at_risk), NOW)
    assert case.stage is CaseStage.WATCHING and effects.actions == []
    assert [t.kind for t in case.tasks].count(TaskKind.QUARANTINE) == 0
    effects = workflow.health_changed(case, HealthStatus.AT_RISK, "Healthy", "service:scoring", policy,
                                      situation(health=CLEAN), NOW, RECHECK)
    assert case.state is CaseState.RESOLVED
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_RESOLVED]


def test_watch_case_quarantines_by_policy_and_becomes_remediation_when_flagged():
    at_risk = HealthView(HealthStatus.AT_RISK, (SourceLabel("HIYA", "MINOR", "Potential Spam"),))
    policy = RemediationPolicy(quarantine_at_risk=True)
    case, effects = workflow.open_case("acme", PHONE, CaseKind.WATCH, "At Risk", "service:scoring", policy,
                                       situation(health=at_risk), NOW)
    assert [a.target_state for a in effects.actions] == [LifecycleState.QUARANTINED]
    complete(case, effects, NOW, policy)
    assert case.stage is CaseStage.WATCHING and not case.waiting
    effects = workflow.health_changed(case, HealthStatus.AT_RISK, "Flagged: Hiya", "service:scoring", policy,
                                      situation(LifecycleState.QUARANTINED, SPAM), NOW, RECHECK)
    assert case.kind is CaseKind.REMEDIATION and case.stage is CaseStage.RESTING
    assert [a.target_state for a in effects.actions] == [LifecycleState.RESTING]


def test_pool_guard_alerts_and_records_the_decision():
    pools = [CampaignPool("cmp-1", total=10, out=3), CampaignPool("cmp-2", total=10, out=1)]
    case, effects = opened(pools=pools)
    assert [(a.campaign_id, a.resting_share) for a in case.pool_alerts] == [("cmp-1", 0.4)]
    assert [a.kind for a in effects.alerts] == [AlertKind.CASE_OPENED, AlertKind.CAMPAIGN_SHORT_OF_NUMBERS]
    [guard] = [e for e in effects.events if e.event_type == "pool.guard"]
    assert guard.detail.startswith("quarantined anyway") and "4 of 10 numbers (40%)" in guard.detail
    assert [a.target_state for a in effects.actions] == [LifecycleState.QUARANTINED]
    # At the threshold exactly (3 of 10 with this one) nothing is raised.
    case, _ = opened(pools=[CampaignPool("cmp-1", total=10, out=2)])
    assert case.pool_alerts == []


def test_pool_guard_holds_an_at_risk_quarantine():
    at_risk = HealthView(HealthStatus.AT_RISK, (SourceLabel("HIYA", "MINOR", "Potential Spam"),))
    policy = RemediationPolicy(quarantine_at_risk=True)
    case, effects = workflow.open_case("acme", PHONE, CaseKind.WATCH, "At Risk", "service:scoring", policy,
                                       situation(health=at_risk, pools=[CampaignPool("cmp-1", 4, 2)]), NOW)
    assert effects.actions == [] and case.current(TaskKind.QUARANTINE).status is TaskStatus.SKIPPED
    assert len(case.pool_alerts) == 1


def test_operator_task_updates():
    policy = RemediationPolicy()
    case, _ = opened(policy)
    dispute = next(t for t in case.tasks if t.kind is TaskKind.DISPUTE)
    friday = datetime(2026, 1, 9, 10, 0, tzinfo=UTC)
    effects = workflow.update_task(case, dispute, {"reference": "HIYA-123"}, "tenant:ops", policy, friday)
    assert dispute.status is TaskStatus.IN_PROGRESS and dispute.due_time == datetime(2026, 1, 16, 10, 0, tzinfo=UTC)
    assert [e.event_type for e in effects.events] == ["task.updated", "dispute.submitted"]
    assert effects.events[0].actor == "tenant:ops"
    workflow.update_task(case, dispute, {"outcome": TaskOutcome.REFUSED}, "tenant:ops", policy, friday)
    assert dispute.status is TaskStatus.FAILED
    workflow.update_task(case, dispute, {"outcome": TaskOutcome.CLEARED, "status": TaskStatus.DONE}, "x", policy,
                         friday)
    assert dispute.status is TaskStatus.DONE and dispute.outcome is TaskOutcome.CLEARED
    quarantine = case.current(TaskKind.QUARANTINE)
    with pytest.raises(FailedPrecondition):
        workflow.update_task(case, quarantine, {"status": TaskStatus.DONE}, "x", policy, friday)
    assert workflow.update_task(case, quarantine, {"notes": "ok"}, "x", policy, friday).events


def test_cancel_restores_the_number_through_the_allowed_path():
    policy = RemediationPolicy()
    case, effects = opened(policy)
    effects = workflow.cancel(case, "false alarm", True, "tenant:ops", policy, NOW)
    assert case.state is CaseState.CANCELLED and effects.drop_pending_actions
    [restore] = effects.actions
    assert restore.method == "restore"
    # The step is chosen from the registry's state when it runs.
    assert workflow.restore_step(restore, LifecycleState.RESTING).target_state is LifecycleState.WARMING
    assert workflow.restore_step(restore, LifecycleState.QUARANTINED).target_state is LifecycleState.ACTIVE
    assert workflow.restore_step(restore, LifecycleState.WARMING).target_state is LifecycleState.ACTIVE
    assert workflow.restore_step(restore, LifecycleState.ACTIVE) is None
    assert workflow.restore_step(restore, LifecycleState.RETIRED) is None
    assert workflow.cancel(case, "again", False, "x", policy, NOW).actions == []


def test_a_late_action_result_does_not_move_an_escalated_case():
    policy = RemediationPolicy()
    case = _warming_case(policy)
    # Re-check passes: ACTIVE is requested, but the number is flagged again before the registry answers.
    effects = workflow.on_due(case, policy, situation(LifecycleState.WARMING, CLEAN), case.stage_until, RECHECK)
    [activate] = effects.actions
    workflow.health_changed(case, HealthStatus.HEALTHY, "Flagged", "s", policy, situation(LifecycleState.WARMING,
                                                                                         SPAM), NOW, RECHECK)
    workflow.on_action_done(case, activate, NOW, policy)
    assert case.state is CaseState.OPEN and case.stage is CaseStage.RESTING and case.cycle == 2


def test_number_retired_in_registry_closes_the_case():
    policy = RemediationPolicy()
    case, _ = opened(policy)
    effects = workflow.on_number_changed(case, policy, situation(LifecycleState.RETIRED), NOW)
    assert case.state is CaseState.RETIRED and effects.drop_pending_actions
