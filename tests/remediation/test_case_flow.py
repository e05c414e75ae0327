"""A flagged number's case from opening to resolution, through the real remediation server and fake upstreams."""

from __future__ import annotations

from datetime import timedelta

from remediation.support import Remediation, saw_health, saw_transition, tasks_of

from nhm.remediation.v1 import remediation_pb2 as rpb
from nhm.type.v1 import types_pb2 as t
from nhm_testing.keys import TENANT_A, TENANT_A_KEY

PHONE = "+14158670001"
S = t.LifecycleState


def test_flagged_number_is_quarantined_rested_warmed_and_resolved(remediation, upstreams, clock):
    registry, scoring = upstreams.registry, upstreams.scoring
    registry.add_number(TENANT_A, PHONE, campaigns=("cmp-east",))
    handle = remediation()
    with handle.channel() as channel:
        api = Remediation(channel, TENANT_A_KEY)
        scoring.set_health(TENANT_A, PHONE, {t.REPUTATION_SOURCE_HIYA: "spam", t.REPUTATION_SOURCE_NOMOROBO: "minor"})
        # Registration tasks are planned once the registry's feed has brought the number (feeds are independent).
        case = api.wait_case(PHONE, lambda c: c.stage == rpb.CASE_STAGE_RESTING and "RESTING" in
                             registry.transitions(PHONE) and tasks_of(c, rpb.TASK_KIND_REGISTRATION), "case resting")
        assert registry.transitions(PHONE) == ["QUARANTINED", "RESTING"]
        assert case.kind == rpb.CASE_KIND_REMEDIATION and case.state == rpb.CASE_STATE_OPEN and case.cycle == 1
        disputes = tasks_of(case, rpb.TASK_KIND_DISPUTE)
        assert sorted(d.source for d in disputes) == [t.REPUTATION_SOURCE_HIYA, t.REPUTATION_SOURCE_NOMOROBO]
        registrations = tasks_of(case, rpb.TASK_KIND_REGISTRATION)
        assert [r.program for r in registrations] == [t.REGISTRATION_PROGRAM_FREE_CALLER_REGISTRY]
        assert registrations[0].prefill["business_name"] == "Acme Outbound LLC"
        rest_until = case.stage_until.ToDatetime().replace(tzinfo=clock.now().tzinfo)
        assert rest_until - clock.now() == timedelta(days=14)

        clock.advance(timedelta(days=14, minutes=1))
        saw_transition(api, case.id, "WARMING")
        plan = registry.numbers[(TENANT_A, PHONE)].warmup_plan
        assert list(plan.daily_caps) == [20, 40, 60, 100] and plan.step_duration.seconds == 3 * 86400

        scoring.set_health(TENANT_A, PHONE, {})  # clean observations
        saw_health(api, case.id, "Healthy")
        clock.advance(timedelta(days=12, minutes=1))
        case = api.wait_case(PHONE, lambda c: c.state == rpb.CASE_STATE_RESOLVED, "resolved")
        assert registry.state(TENANT_A, PHONE) == S.LIFECYCLE_STATE_ACTIVE
        assert registry.transitions(PHONE) == ["QUARANTINED", "RESTING", "WARMING", "ACTIVE"]
        assert case.stage == rpb.CASE_STAGE_CLOSED
        events = [e.event_type for e in api.events(case.id)]
        assert events[0] == "case.opened" and "case.resolved" in events
