"""The scoring rules on their own (no server, no database): statuses, scores, labels, windows, checks, policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nhm_scoring.activity import Activity, DailyCounts, HourlyActivity, Windows, epoch_day, epoch_hour, summarize
from nhm_scoring.assessment import LabelState, assess, carrier_statuses, label_weight, source_views
from nhm_scoring.csv_import import parse_observations
from nhm_scoring.events import CallOutcome, Limits, Observation, check_calls, check_observations
from nhm_scoring.factors import NumberTraits
from nhm_scoring.folding import Standing, fold_calls
from nhm_scoring.policy import DEFAULTS, FactorKind, PolicyViolations, apply_update, effective
from nhm_scoring.reputation import Carrier, HealthStatus, Label, Source, parse_label, parse_source

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
CLEAN_TRAITS = NumberTraits("A", True)


def label(source: Source, value: Label, age: timedelta = timedelta(0)) -> LabelState:
    return LabelState(source, value, "", NOW - age)


def healthy_activity(**changes: int) -> Activity:
    values = {"window_outbound": 200, "window_answered": 60, "window_inbound": 10, "window_talk_ms": 60 * 60_000,
              "today_outbound": 70, "yesterday_outbound": 100, "busiest_hour_outbound": 15, "any_recent": True}
    values.update(changes)
    return Activity(**values)


def test_status_rules_in_order_of_severity():
    quiet = healthy_activity()
    assert assess(quiet, CLEAN_TRAITS, [], DEFAULTS, NOW).status is HealthStatus.HEALTHY
    minor = [label(Source.ROBOKILLER, Label.MINOR)]
    assert assess(quiet, CLEAN_TRAITS, minor, DEFAULTS, NOW).status is HealthStatus.AT_RISK
    spam = [*minor, label(Source.TNS, Label.SPAM)]
    assert assess(quiet, CLEAN_TRAITS, spam, DEFAULTS, NOW).status is HealthStatus.FLAGGED
    scam = [label(Source.TRUECALLER, Label.SCAM)]
    assert assess(quiet, CLEAN_TRAITS, scam, DEFAULTS, NOW).status is HealthStatus.FLAGGED
    blocked = [*spam, label(Source.VERIZON, Label.BLOCKED)]
    assert assess(quiet, CLEAN_TRAITS, blocked, DEFAULTS, NOW).status is HealthStatus.BLOCKED
    burst = healthy_activity(sip608_in_blocked_window=5)
    result = assess(burst, CLEAN_TRAITS, spam, DEFAULTS, NOW)
    assert result.status is HealthStatus.BLOCKED and result.cause_factors == (FactorKind.BLOCKED_CALLS,)
    assert assess(healthy_activity(sip608_in_blocked_window=4), CLEAN_TRAITS, [], DEFAULTS, NOW).status \
        is HealthStatus.HEALTHY


def test_behaviour_alone_reaches_at_risk_only_past_the_score_threshold():
    one = healthy_activity(window_answered=10)  # 5% answered: 30 points
    result = assess(one, CLEAN_TRAITS, [], DEFAULTS, NOW)
    assert result.status is HealthStatus.HEALTHY and result.risk_score == 30 and result.score == 70
    two = healthy_activity(window_answered=10, yesterday_outbound=180)  # and high volume: 60 points
    result = assess(two, CLEAN_TRAITS, [], DEFAULTS, NOW)
    assert result.status is HealthStatus.AT_RISK and result.risk_score == 60
    assert set(result.cause_factors) == {FactorKind.ANSWER_RATE, FactorKind.DAILY_VOLUME}
    assert "180 calls per day (threshold 150)" in result.cause and "answer rate 5% below 8%" in result.cause
    few = healthy_activity(window_outbound=19, window_answered=0, window_inbound=0)
    assert assess(few, CLEAN_TRAITS, [], DEFAULTS, NOW).risk_score == 0  # too few calls to judge rates


def test_scores_never_contradict_the_status():
    quiet = healthy_activity()
    assert assess(quiet, CLEAN_TRAITS, [], DEFAULTS, NOW).score == 100
    assert assess(quiet, CLEAN_TRAITS, [label(Source.HIYA, Label.MINOR)], DEFAULTS, NOW).score == 69
    assert assess(quiet, CLEAN_TRAITS, [label(Source.HIYA, Label.SPAM)], DEFAULTS, NOW).score == 39
    assert assess(quiet, CLEAN_TRAITS, [label(Source.HIYA, Label.SCAM)], DEFAULTS, NOW).score == 30
    assert assess(quiet, CLEAN_TRAITS, [label(Source.HIYA, Label.BLOCKED)], DEFAULTS, NOW).score == 9
    assert assess(healthy_activity(sip608_in_blocked_window=9), CLEAN_TRAITS, [], DEFAULTS, NOW).score == 0


def test_labels_decay_after_fresh_for_and_vanish_at_expiry():
    assert label_weight(NOW, NOW, DEFAULTS) == 1.0
    assert label_weight(NOW - timedelta(days=7), NOW, DEFAULTS) == 1.0
    assert label_weight(NOW - timedelta(days=18, hours=12), NOW, DEFAULTS) == 0.5
    assert label_weight(NOW - timedelta(days=30), NOW, DEFAULTS) == 0.0
    old = [label(Source.HIYA, Label.SPAM, timedelta(days=31))]
    assert source_views(old, NOW, DEFAULTS) == []
    assert assess(healthy_activity(), CLEAN_TRAITS, old, DEFAULTS, NOW).status is HealthStatus.HEALTHY


@pytest.mark.parametrize(("source", "carrier"), [
    (Source.HIYA, Carrier.ATT), (Source.ATT, Carrier.ATT), (Source.FIRST_ORION, Carrier.TMOBILE),
    (Source.TMOBILE, Carrier.TMOBILE), (Source.TNS, Carrier.VERIZON), (Source.VERIZON, Carrier.VERIZON),
    (Source.NOMOROBO, None), (Source.ROBOKILLER, None), (Source.YOUMAIL, None), (Source.TRUECALLER, None),
    (Source.OTHER, None)])
def test_each_source_maps_to_its_carrier_or_to_none(source, carrier):
    views = source_views([label(source, Label.SPAM)], NOW, DEFAULTS)
    statuses = carrier_statuses(views)
    flagged = {c for c, s in statuses.items() if s is HealthStatus.FLAGGED}
    assert flagged == ({carrier} if carrier else set())
    # Apps still count overall.
    assert assess(healthy_activity(), CLEAN_TRAITS, [label(source, Label.SPAM)], DEFAULTS, NOW).status \
        is HealthStatus.FLAGGED


def test_vendor_vocabularies():
    assert [parse_label(w) for w in ("Spam Likely", "SCAM LIKELY", "Fraud", "Potential Spam", "Nuisance", "[SPAM?]",
                                     "clean", "REPUTATION_LABEL_BLOCKED", "blocked")] == [
        Label.SPAM, Label.SCAM, Label.SCAM, Label.MINOR, Label.MINOR, Label.MINOR, Label.CLEAN, Label.BLOCKED,
        Label.BLOCKED]
    assert parse_label("lovely") is None
    assert [parse_source(w) for w in ("Hiya", "first orion", "T-Mobile", "AT&T", "att", "TNS Call Guardian",
                                      "REPUTATION_SOURCE_YOUMAIL", "Truecaller")] == [
        Source.HIYA, Source.FIRST_ORION, Source.TMOBILE, Source.ATT, Source.ATT, Source.TNS, Source.YOUMAIL,
        Source.TRUECALLER]
    assert parse_source("carrier pigeon") is None


def test_windows_add_up_only_their_own_buckets():
    today = epoch_day(NOW)
    windows = Windows.at(NOW, DEFAULTS)
    days = [DailyCounts(today, outbound=10, answered=2, complaints=1, max_prospect_calls=2),
            DailyCounts(today - 1, outbound=100, answered=5, max_prospect_calls=4),
            DailyCounts(today - 2, outbound=50, answered=10, inbound=3),
            DailyCounts(today - 3, outbound=1000, answered=0, complaints=1, max_prospect_calls=9),
            DailyCounts(today - 30, complaints=5)]
    # The hour windows come added up from the database (tests/scoring/test_buckets.py).
    a = summarize(windows, days, HourlyActivity(busiest_outbound=40, sip608=3, any_calls=True), short_calls=3)
    assert (a.today_outbound, a.yesterday_outbound) == (10, 100)
    assert (a.window_outbound, a.window_answered, a.window_inbound) == (160, 17, 3)  # 3 days: today and two before
    assert a.complaints == 2  # 30 days: the one 30 days ago is out
    assert a.max_prospect_calls == 4  # today or yesterday
    assert (a.busiest_hour_outbound, a.sip608_in_blocked_window) == (40, 3)
    assert a.window_short == 3 and a.any_recent
    quiet = summarize(windows, [DailyCounts(today - 30)], HourlyActivity(), short_calls=0)
    assert not quiet.any_recent
    assert summarize(windows, [], HourlyActivity(sip608=1, any_calls=True), short_calls=0).any_recent


def test_event_checks_and_the_folding_of_one_call():
    limits = Limits(NOW, timedelta(days=7), timedelta(minutes=5))
    call = CallOutcome("e1", "+14158670001", 1, "+12127360001", NOW - timedelta(minutes=1), True, 9_500, 200, 1)
    checked = check_calls([call, CallOutcome("e2", "+14158670001", 1, "", NOW + timedelta(minutes=6), False, 0,
                                             0, 2)], limits)
    assert [i for i, _, _ in checked.events] == [0]
    assert [(r.index, r.field) for r in checked.rejections] == [(1, "outcomes[1].start_time")]
    folded = fold_calls([call], {"+14158670001": Standing(HealthStatus.FLAGGED, 2)})
    hour = folded.hours[("+14158670001", epoch_hour(call.start_time))]
    assert (hour["outbound"], hour["answered"], hour["flagged_outbound"], hour["flagged_att"]) == (1, 1, 1, 1)
    assert "flagged_tmobile" not in hour
    assert folded.talk == {("+14158670001", epoch_day(NOW), 9): 1}  # 9.5 s talks in the 9-second bucket
    observations = check_observations([Observation("o", "+14158670001", 4, 0, "Spam Likely", None, NOW)], limits,
                                      DEFAULTS.label_expires_after)
    assert observations.events[0][2].label == Label.SPAM


def test_csv_rows_are_read_or_rejected_one_by_one():
    parsed = parse_observations(
        b"\xef\xbb\xbfphone_number,source,label,observed_at,event_id\n"
        b"+14158670001,Hiya,Spam Likely,2026-01-05T10:00:00+02:00,given-id\n"
        b"+14158670001,Hiya,spam,2026-01-05T10:00:00,\n")
    [(row, observation)] = parsed.rows
    assert row == 1 and observation.event_id == "given-id" and observation.raw_label == "Spam Likely"
    assert observation.observe_time == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert [(r.index, r.field) for r in parsed.rejections] == [(2, "rows[2].observed_at")]


def test_policy_updates_validate_the_whole_policy():
    overrides, policy = apply_update({}, {"daily_volume_threshold": 120, "factor_weights.ANSWER_RATE": 45})
    assert overrides == {"daily_volume_threshold": 120, "factor_weights": {"ANSWER_RATE": 45}}
    assert policy.daily_volume_threshold == 120 and policy.weight(FactorKind.ANSWER_RATE) == 45
    assert policy.weight(FactorKind.DAILY_VOLUME) == 30
    overrides, policy = apply_update(overrides, {"daily_volume_threshold": None, "factor_weights": {}})
    assert overrides == {} and policy == effective({})
    with pytest.raises(PolicyViolations) as error:
        apply_update({}, {"label_fresh_for": timedelta(days=31), "blocked_burst_count": 2.5})
    assert {v.field for v in error.value.violations} == {"policy.label_fresh_for", "policy.blocked_burst_count"}
