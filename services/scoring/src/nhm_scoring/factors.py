"""Risk factors: one per seed cause (and three beyond it), each with its value, threshold, weight and advice."""

from __future__ import annotations

from dataclasses import dataclass

from nhm_scoring.activity import Activity
from nhm_scoring.policy import COMPLAINT_WINDOW_DAYS, FactorKind, ScoringPolicy, duration_words

# The seed's "How to avoid" column, and its advice for what lies beyond its table.
ADVICE = {
    FactorKind.DAILY_VOLUME: "Rotate across multiple numbers; cap daily volume per number at 100-150 calls.",
    FactorKind.HOURLY_VOLUME: "Rotate across multiple numbers.",
    FactorKind.ANSWER_RATE: "Improve list quality, use Local Presence.",
    FactorKind.SHORT_CALLS: "Indicates robocalling patterns. Ensure live conversations.",
    FactorKind.AVERAGE_TALK_TIME: "Indicates robocalling patterns. Ensure live conversations.",
    FactorKind.COMPLAINTS: "Respect DNC requests, avoid overcalling.",
    FactorKind.INBOUND_USAGE: "Accept inbound calls on your dialer numbers.",
    FactorKind.BLOCKED_CALLS: "Remove from active campaigns.",
    FactorKind.ATTESTATION: "Register for STIR/SHAKEN: ensure your numbers are verified under the STIR/SHAKEN "
                            "framework to improve trust scores with carriers.",
    FactorKind.REPEAT_DIALING: "Respect DNC requests, avoid overcalling.",
}

ATTESTATION_LEVELS = {"A": 1, "B": 2, "C": 3}
_ATTESTATION_WORDS = {"A": "A (full)", "B": "B (partial)", "C": "C (gateway)"}


@dataclass(frozen=True)
class Factor:
    kind: FactorKind
    name: str
    value: float
    threshold: float
    weight: float
    triggered: bool
    advice: str
    detail: str
    # A short phrase for transition causes and summaries, e.g. "answer rate 4% below 8%".
    cause: str


@dataclass(frozen=True)
class NumberTraits:
    """What the registry says of a number that scoring needs."""

    attestation: str = ""
    inbound_enabled: bool = False


def evaluate(activity: Activity, traits: NumberTraits, policy: ScoringPolicy) -> list[Factor]:
    """Every factor, triggered or not, in RiskFactorKind order."""
    return [
        _daily_volume(activity, policy),
        _hourly_volume(activity, policy),
        _answer_rate(activity, policy),
        _short_calls(activity, policy),
        _average_talk_time(activity, policy),
        _complaints(activity, policy),
        _inbound_usage(activity, traits, policy),
        _blocked_calls(activity, policy),
        _attestation(traits, policy),
        _repeat_dialing(activity, policy),
    ]


def blocked_burst(activity: Activity, policy: ScoringPolicy) -> bool:
    """SIP 608 rejections within the window reach the burst count: analytics engines block the number."""
    return activity.sip608_in_blocked_window >= policy.blocked_burst_count


def _factor(kind: FactorKind, policy: ScoringPolicy, *, name: str, value: float, threshold: float,
            triggered: bool, detail: str, cause: str) -> Factor:
    return Factor(kind, name, float(value), float(threshold), policy.weight(kind), triggered, ADVICE[kind], detail,
                  cause)


def _window(policy: ScoringPolicy) -> str:
    days = policy.answer_rate_window_days
    return f"{days} day{'s' if days != 1 else ''}"


def _daily_volume(a: Activity, p: ScoringPolicy) -> Factor:
    value, when = (a.yesterday_outbound, "yesterday") if a.yesterday_outbound > a.today_outbound \
        else (a.today_outbound, "today")
    return _factor(FactorKind.DAILY_VOLUME, p, name="calls per day", value=value,
                   threshold=p.daily_volume_threshold, triggered=value >= p.daily_volume_threshold,
                   detail=f"{_calls(value)} {when}; threshold {p.daily_volume_threshold}",
                   cause=f"{value} calls per day (threshold {p.daily_volume_threshold})")


def _hourly_volume(a: Activity, p: ScoringPolicy) -> Factor:
    value = a.busiest_hour_outbound
    return _factor(FactorKind.HOURLY_VOLUME, p, name="calls in the busiest hour", value=value,
                   threshold=p.hourly_volume_threshold, triggered=value > p.hourly_volume_threshold,
                   detail=f"{_calls(value)} in the busiest hour of the last 24 hours; "
                          f"more than {p.hourly_volume_threshold} is a spike",
                   cause=f"{value} calls in one hour (over {p.hourly_volume_threshold})")


def _enough_calls(a: Activity, p: ScoringPolicy) -> bool:
    return a.window_outbound >= p.answer_rate_min_calls


def _too_few(a: Activity, p: ScoringPolicy, what: str) -> str:
    return (f"{a.window_outbound} outbound calls over {_window(p)}; at least {p.answer_rate_min_calls} needed to "
            f"judge {what}")


def _answer_rate(a: Activity, p: ScoringPolicy) -> Factor:
    rate = a.window_answered / a.window_outbound if a.window_outbound else 0.0
    enough = _enough_calls(a, p)
    detail = (f"{pct(rate)} of {a.window_outbound} outbound calls answered over {_window(p)}; "
              f"threshold {pct(p.answer_rate_threshold)}") if enough else _too_few(a, p, "the answer rate")
    return _factor(FactorKind.ANSWER_RATE, p, name="answer rate", value=rate, threshold=p.answer_rate_threshold,
                   triggered=enough and rate < p.answer_rate_threshold, detail=detail,
                   cause=f"answer rate {pct(rate)} below {pct(p.answer_rate_threshold)}")


def _short_calls(a: Activity, p: ScoringPolicy) -> Factor:
    share = a.window_short / a.window_answered if a.window_answered else 0.0
    enough = _enough_calls(a, p) and a.window_answered > 0
    short = duration_words(p.short_call_duration)
    detail = (f"{pct(share)} of {a.window_answered} answered calls shorter than {short} over {_window(p)}; "
              f"threshold {pct(p.short_call_share_threshold)}") if enough else _too_few(a, p, "call lengths")
    return _factor(FactorKind.SHORT_CALLS, p, name=f"share of answered calls under {short}", value=share,
                   threshold=p.short_call_share_threshold, triggered=enough and share > p.short_call_share_threshold,
                   detail=detail,
                   cause=f"{pct(share)} of answered calls under {short} (over {pct(p.short_call_share_threshold)})")


def _average_talk_time(a: Activity, p: ScoringPolicy) -> Factor:
    average = a.window_talk_ms / a.window_answered / 1000 if a.window_answered else 0.0
    threshold = p.average_talk_time_threshold.total_seconds()
    enough = _enough_calls(a, p) and a.window_answered > 0
    detail = (f"answered calls lasted {average:.0f} s on average over {_window(p)}; threshold {threshold:g} s"
              if enough else _too_few(a, p, "talk time"))
    return _factor(FactorKind.AVERAGE_TALK_TIME, p, name="average talk time (seconds)", value=round(average, 3),
                   threshold=threshold, triggered=enough and average < threshold, detail=detail,
                   cause=f"average talk time {average:.0f} s below {threshold:g} s")


def _complaints(a: Activity, p: ScoringPolicy) -> Factor:
    value = a.complaints
    return _factor(FactorKind.COMPLAINTS, p, name=f"complaints in {COMPLAINT_WINDOW_DAYS} days", value=value,
                   threshold=p.complaint_threshold, triggered=value >= p.complaint_threshold,
                   detail=f"{value} complaint{'s' if value != 1 else ''} or do-not-call requests in "
                          f"{COMPLAINT_WINDOW_DAYS} days; threshold {p.complaint_threshold}",
                   cause=f"{value} complaints in {COMPLAINT_WINDOW_DAYS} days (threshold {p.complaint_threshold})")


def _inbound_usage(a: Activity, t: NumberTraits, p: ScoringPolicy) -> Factor:
    ratio = a.window_inbound / a.window_outbound if a.window_outbound else 0.0
    enough = _enough_calls(a, p)
    low = ratio < p.inbound_ratio_threshold
    triggered = enough and (low or not t.inbound_enabled)
    if not enough:
        detail = _too_few(a, p, "inbound usage") + ("" if t.inbound_enabled else "; inbound is disabled")
    else:
        detail = (f"{a.window_inbound} inbound for {a.window_outbound} outbound calls over {_window(p)} "
                  f"(ratio {ratio:.3g}); threshold {p.inbound_ratio_threshold:g}")
        if not t.inbound_enabled:
            detail += "; inbound is disabled, so callbacks cannot reach you"
    cause = "inbound disabled" if not t.inbound_enabled else \
        f"inbound ratio {ratio:.3g} below {p.inbound_ratio_threshold:g}"
    return _factor(FactorKind.INBOUND_USAGE, p, name="inbound calls per outbound call", value=round(ratio, 6),
                   threshold=p.inbound_ratio_threshold, triggered=triggered, detail=detail, cause=cause)


def _blocked_calls(a: Activity, p: ScoringPolicy) -> Factor:
    window = duration_words(p.blocked_window)
    if blocked_burst(a, p):
        count = a.sip608_in_blocked_window
        return _factor(FactorKind.BLOCKED_CALLS, p, name=f"SIP 608 rejections in {window}", value=count,
                       threshold=p.blocked_burst_count, triggered=True,
                       detail=f"{count} calls rejected with SIP 608 (blocked by an analytics engine) in {window}; "
                              f"{p.blocked_burst_count} mark the number Blocked",
                       cause=f"{count} SIP 608 rejections in {window}")
    share = a.window_blocked / a.window_outbound if a.window_outbound else 0.0
    enough = _enough_calls(a, p)
    detail = (f"{pct(share)} of {a.window_outbound} outbound calls blocked or rejected (SIP 603/607/608) over "
              f"{_window(p)}; threshold {pct(p.blocked_share_threshold)}; {a.sip608_in_blocked_window} SIP 608 in "
              f"{window} (Blocked at {p.blocked_burst_count})") if enough else _too_few(a, p, "blocking")
    return _factor(FactorKind.BLOCKED_CALLS, p, name="share of outbound calls blocked (603/607/608)", value=share,
                   threshold=p.blocked_share_threshold, triggered=enough and share >= p.blocked_share_threshold,
                   detail=detail, cause=f"{pct(share)} of calls blocked (threshold {pct(p.blocked_share_threshold)})")


def _attestation(t: NumberTraits, p: ScoringPolicy) -> Factor:
    level = ATTESTATION_LEVELS.get(t.attestation, 0)
    if level:
        detail = f"STIR/SHAKEN attestation {_ATTESTATION_WORDS[t.attestation]}; B and C raise label risk"
    else:
        detail = "STIR/SHAKEN attestation unknown"
    return _factor(FactorKind.ATTESTATION, p, name="STIR/SHAKEN attestation level (A=1, B=2, C=3)", value=level,
                   threshold=2, triggered=level >= 2, detail=detail, cause=f"attestation {t.attestation}")


def _repeat_dialing(a: Activity, p: ScoringPolicy) -> Factor:
    value = a.max_prospect_calls
    return _factor(FactorKind.REPEAT_DIALING, p, name="most calls to one prospect in a day", value=value,
                   threshold=p.repeat_dial_threshold, triggered=value > p.repeat_dial_threshold,
                   detail=f"{_calls(value)} to one prospect in one day (today or yesterday); "
                          f"more than {p.repeat_dial_threshold} is repeat dialling",
                   cause=f"{value} calls to one prospect in a day (over {p.repeat_dial_threshold})")


def pct(value: float) -> str:
    """0.04 -> '4%', 0.125 -> '12.5%'."""
    text = f"{value * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _calls(count: int) -> str:
    return f"{count} call{'s' if count != 1 else ''}"
