"""``nhm health``, ``nhm report`` and ``nhm reputation``: health with its causes, the weekly report, CSV loads."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_sdk._convert import short_enum_name
from nhm_sdk.cli._context import Context, Subparsers, command, group
from nhm_sdk.cli._output import ago, enum_name, enum_names, fields, print_json, table, to_dict, when


def register(commands: Subparsers) -> None:
    health = group(commands, "health", "numbers' health: status, score, causes and history")
    p = command(health, "list", list_health, "list numbers' health with counts per status")
    p.add_argument("--status", action="append", help="HEALTHY, AT_RISK, FLAGGED or BLOCKED (repeatable)")
    p.add_argument("--source", default=None, help="only numbers labelled by this source, e.g. HIYA")
    p.add_argument("--campaign", default="")
    p.add_argument("--area-code", default="")
    p.add_argument("--prefix", default="")
    p.add_argument("--limit", type=int, default=None)
    p = command(health, "show", show_health, "one number's health: factors with advice, sources, history")
    p.add_argument("phone_number")

    report = group(commands, "report", "reports")
    command(report, "weekly", weekly_report, "the weekly health report: changes, causes, early warnings")

    reputation = group(commands, "reputation", "reputation observations from carriers, engines and apps")
    p = command(reputation, "load", load_reputation, "load a reputation vendor's CSV export")
    p.add_argument("file", type=Path, help="CSV: phone_number, source, label, observed_at[, score, raw_label, "
                                           "event_id]")


STATUS_MARK = {types.HEALTH_STATUS_HEALTHY: "ok", types.HEALTH_STATUS_AT_RISK: "!",
               types.HEALTH_STATUS_FLAGGED: "!!", types.HEALTH_STATUS_BLOCKED: "XX"}


def list_health(context: Context, args: argparse.Namespace) -> int:
    pages = context.client.list_health(statuses=args.status, source=args.source, campaign_id=args.campaign,
                                       area_code=args.area_code, phone_number_prefix=args.prefix, page_size=500,
                                       limit=args.limit)
    counts = pages.first_response.counts
    items = list(pages)
    if context.json:
        print_json({"counts": _counts_dict(counts), "health": [to_dict(h) for h in items]}, context.out)
        return 0
    context.say(f"{counts.total} numbers: {counts.healthy} healthy, {counts.at_risk} at risk, "
                f"{counts.flagged} flagged, {counts.blocked} blocked\n")
    table(([h.phone_number, enum_name(h, "status"), h.score, _carriers(h), h.summary] for h in items),
          ["NUMBER", "STATUS", "SCORE", "CARRIERS", "WHY"], context.out)
    return 0


def _counts_dict(counts: sco.StatusCounts) -> dict[str, int]:
    return {"healthy": counts.healthy, "at_risk": counts.at_risk, "flagged": counts.flagged,
            "blocked": counts.blocked, "total": counts.total}


def _carriers(health: sco.NumberHealth) -> str:
    return " ".join(f"{carrier.removeprefix('CARRIER_')}:{short_enum_name(types.HealthStatus.DESCRIPTOR, status)}"
                    for carrier, status in sorted(health.carrier_status.items())
                    if status != types.HEALTH_STATUS_HEALTHY)


def print_health_detail(context: Context, health: sco.NumberHealth,
                        history: Sequence[sco.HealthTransition]) -> None:
    since = ago(health.status_time)
    context.say(f"Health: {enum_name(health, 'status')} (score {health.score}/100)" + (f", since {since}" if since
                                                                                       else ""))
    if health.summary:
        context.say(f"  {health.summary}")
    if health.carrier_status:
        context.say("  Carriers: " + ", ".join(
            f"{carrier.removeprefix('CARRIER_')} {short_enum_name(types.HealthStatus.DESCRIPTOR, status)}"
            for carrier, status in sorted(health.carrier_status.items())))
    labelled = [s for s in health.sources if s.label != types.REPUTATION_LABEL_UNSPECIFIED]
    if labelled:
        context.say("\nSources")
        table(([enum_name(s, "source"), enum_name(s, "label"), s.raw_label, enum_name(s, "status"),
                when(s.observe_time), f"{s.weight:.2f}"] for s in labelled),
              ["SOURCE", "LABEL", "AS SHOWN", "STATUS", "OBSERVED", "WEIGHT"], context.out)
    if health.factors:
        context.say("\nRisk factors")
        table(([("*" if f.triggered else " ") + " " + f.name, f.detail or f"{f.value:.3g} (threshold "
                f"{f.threshold:.3g})", f.advice if f.triggered else ""] for f in health.factors),
              ["FACTOR", "MEASURED", "ADVICE"], context.out)
    if history:
        context.say("\nHealth history")
        table(([when(t.transition_time), f"{enum_name(t, 'from_status')} -> {enum_name(t, 'to_status')}",
                t.score, t.cause] for t in history), ["WHEN", "CHANGE", "SCORE", "CAUSE"], context.out)


def show_health(context: Context, args: argparse.Namespace) -> int:
    health = context.client.get_health(args.phone_number)
    history = context.client.health_history(args.phone_number, limit=20).to_list()
    if context.json:
        print_json({"health": to_dict(health), "history": [to_dict(t) for t in history]}, context.out)
        return 0
    context.say(health.phone_number)
    print_health_detail(context, health, history)
    return 0


def weekly_report(context: Context, args: argparse.Namespace) -> int:
    report = context.client.weekly_report()
    if context.json:
        print_json(report, context.out)
        return 0
    now, before = report.counts_now, report.counts_week_ago
    context.say(f"Weekly report {when(report.period_start)} - {when(report.period_end)}")
    table([[label, getattr(before, key), getattr(now, key)] for label, key in
           (("Healthy", "healthy"), ("At risk", "at_risk"), ("Flagged", "flagged"), ("Blocked", "blocked"),
            ("Total", "total"))], ["STATUS", "WEEK AGO", "NOW"], context.out)
    fields([("Outbound calls", report.outbound_calls),
            ("Answer rate, clean numbers", f"{report.answer_rate_clean:.1%}"),
            ("Answer rate, flagged numbers", f"{report.answer_rate_flagged:.1%}"),
            ("Newly at risk", list(report.newly_at_risk))], context.out)
    if report.top_causes:
        context.say("\nTop causes")
        table(([c.description, c.numbers] for c in report.top_causes), ["CAUSE", "NUMBERS"], context.out)
    if report.flagged_call_share:
        context.say("\nCalls placed from flagged numbers, per carrier")
        table(([enum_name(s, "carrier"), s.calls, s.calls_from_flagged, f"{s.share:.1%}"]
               for s in report.flagged_call_share), ["CARRIER", "CALLS", "FROM FLAGGED", "SHARE"], context.out)
    if report.changed:
        context.say("\nChanged this week")
        table(([t.phone_number, f"{enum_name(t, 'from_status')} -> {enum_name(t, 'to_status')}", t.cause,
                ",".join(enum_names(t, "sources"))] for t in report.changed),
              ["NUMBER", "CHANGE", "CAUSE", "SOURCES"], context.out)
    return 0


def load_reputation(context: Context, args: argparse.Namespace) -> int:
    summary = context.client.import_reputation_csv(args.file)
    if context.json:
        print_json(summary, context.out)
    else:
        context.say(f"{summary.accepted} accepted, {summary.duplicates} duplicates, {summary.rejected} rejected")
        if summary.rejections:
            table(([r.index, r.field, r.reason] for r in summary.rejections), ["ROW", "FIELD", "ERROR"],
                  context.out)
    return 1 if summary.rejected else 0
