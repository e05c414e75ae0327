"""``nhm cases`` and ``nhm tasks``: remediation cases, their tasks, notes and evidence."""

from __future__ import annotations

import argparse
from pathlib import Path

from nhm.remediation.v1 import remediation_pb2 as rem
from nhm_sdk.cli._context import Context, Subparsers, command, group
from nhm_sdk.cli._output import ago, enum_name, fields, print_json, table, to_dict, when


def register(commands: Subparsers) -> None:
    cases = group(commands, "cases", "remediation cases")
    p = command(cases, "list", list_cases, "list cases")
    p.add_argument("--state", action="append", help="OPEN, RESOLVED, RETIRED or CANCELLED (repeatable)")
    p.add_argument("--stage", action="append", help="QUARANTINE, RESTING, WARMING, RECHECK, WATCHING …")
    p.add_argument("--overdue", action="store_true", help="only cases with an overdue task")
    p.add_argument("--number", default="")
    p.add_argument("--campaign", default="")
    p = command(cases, "show", show_case, "a case with its tasks and audit trail")
    p.add_argument("case_id")
    p = command(cases, "open", open_case, "open a case by hand")
    p.add_argument("phone_number")
    p.add_argument("--watch", action="store_true", help="a watch case (no quarantine) instead of remediation")
    p.add_argument("--reason", default="opened by operator")
    p = command(cases, "update-task", update_task, "record progress on a task")
    p.add_argument("case_id")
    p.add_argument("task_id")
    p.add_argument("--status", help="PENDING, IN_PROGRESS, DONE, SKIPPED or FAILED")
    p.add_argument("--outcome", help="CLEARED, REFUSED or NEEDS_REVIEW")
    p.add_argument("--owner")
    p.add_argument("--reference", help="the programme's or engine's ticket")
    p.add_argument("--notes")
    p = command(cases, "note", add_note, "add a note to a case")
    p.add_argument("case_id")
    p.add_argument("note")
    p = command(cases, "cancel", cancel_case, "cancel an open case")
    p.add_argument("case_id")
    p.add_argument("--reason", default="cancelled by operator")
    p.add_argument("--restore", action="store_true", help="return the number to ACTIVE")
    p = command(cases, "evidence", evidence, "the dispute evidence packet (JSON or CSV)")
    p.add_argument("case_id")
    p.add_argument("--task", default="")
    p.add_argument("--format", default="JSON", choices=["JSON", "CSV", "json", "csv"])
    p.add_argument("-o", "--output", type=Path, help="write the file here (default: print it)")

    tasks = group(commands, "tasks", "tasks across cases")
    p = command(tasks, "list", list_tasks, "list tasks, e.g. every overdue dispute")
    p.add_argument("--kind", action="append", help="QUARANTINE, REGISTRATION, DISPUTE, REST, WARMUP, RECHECK")
    p.add_argument("--status", action="append")
    p.add_argument("--overdue", action="store_true")


def _task_row(task: rem.Task) -> list[object]:
    subject = enum_name(task, "source") if task.kind == rem.TASK_KIND_DISPUTE else (
        enum_name(task, "program") if task.kind == rem.TASK_KIND_REGISTRATION else "")
    return [task.id, enum_name(task, "kind"), subject.replace("UNSPECIFIED", ""), enum_name(task, "status"),
            task.owner, when(task.due_time) + (" OVERDUE" if task.overdue else ""),
            enum_name(task, "outcome").replace("UNSPECIFIED", ""), task.reference]


TASK_HEADERS = ["TASK", "KIND", "FOR", "STATUS", "OWNER", "DUE", "OUTCOME", "REFERENCE"]


def list_cases(context: Context, args: argparse.Namespace) -> int:
    cases = context.client.list_cases(states=args.state, stages=args.stage, overdue=args.overdue,
                                      phone_number=args.number, campaign_id=args.campaign, page_size=200).to_list()
    if context.json:
        print_json(cases, context.out)
        return 0
    table(([c.id, c.phone_number, enum_name(c, "kind"), enum_name(c, "state"), enum_name(c, "stage"), c.cycle,
            ago(c.open_time), (c.triggers[-1] if c.triggers else "")] for c in cases),
          ["CASE", "NUMBER", "KIND", "STATE", "STAGE", "CYCLE", "OPENED", "TRIGGER"], context.out)
    return 0


def show_case(context: Context, args: argparse.Namespace) -> int:
    case = context.client.get_case(args.case_id)
    events = context.client.case_events(args.case_id, limit=50).to_list()
    if context.json:
        print_json({"case": to_dict(case), "events": [to_dict(e) for e in events]}, context.out)
        return 0
    print_case(context, case)
    if events:
        context.say("\nAudit trail")
        table(([when(e.event_time), e.event_type, e.actor, e.detail] for e in events),
              ["WHEN", "EVENT", "BY", "DETAIL"], context.out)
    return 0


def print_case(context: Context, case: rem.Case) -> None:
    context.say(f"Case {case.id}: {case.phone_number}, {enum_name(case, 'state')} / {enum_name(case, 'stage')}")
    fields([("Kind", enum_name(case, "kind")), ("Cycle", case.cycle), ("Triggers", "; ".join(case.triggers)),
            ("Stage until", when(case.stage_until)), ("Recommendation", case.recommendation),
            ("Opened", when(case.open_time)), ("Closed", when(case.close_time))], context.out)
    for alert in case.pool_alerts:
        context.say(f"  pool alert: {alert.message}")
    if case.tasks:
        context.say("\nTasks")
        table((_task_row(t) for t in case.tasks), TASK_HEADERS, context.out)


def open_case(context: Context, args: argparse.Namespace) -> int:
    response = context.client.open_case(args.phone_number, kind="WATCH" if args.watch else "REMEDIATION",
                                        reason=args.reason)
    if context.json:
        print_json(response, context.out)
    else:
        context.say(("opened" if response.created else "joined open") + f" case {response.case.id}")
    return 0


def update_task(context: Context, args: argparse.Namespace) -> int:
    response = context.client.update_task(args.case_id, args.task_id, status=args.status, outcome=args.outcome,
                                          owner=args.owner, reference=args.reference, notes=args.notes)
    if context.json:
        print_json(response, context.out)
    else:
        table([_task_row(response.task)], TASK_HEADERS, context.out)
        context.say(f"\ncase {response.case.id} is {enum_name(response.case, 'state')} / "
                    f"{enum_name(response.case, 'stage')}")
    return 0


def add_note(context: Context, args: argparse.Namespace) -> int:
    case = context.client.add_case_note(args.case_id, args.note)
    context.say(f"noted on case {case.id}")
    return 0


def cancel_case(context: Context, args: argparse.Namespace) -> int:
    case = context.client.cancel_case(args.case_id, reason=args.reason, restore_number=args.restore)
    context.say(f"case {case.id}: {enum_name(case, 'state')}")
    return 0


def evidence(context: Context, args: argparse.Namespace) -> int:
    packet = context.client.evidence_packet(args.case_id, task_id=args.task, format=args.format.upper())
    if args.output:
        args.output.write_bytes(packet.content)
        context.say(f"wrote {args.output} ({len(packet.content)} bytes, {packet.content_type})")
    else:
        context.out.write(packet.content.decode())
        if not packet.content.endswith(b"\n"):
            context.out.write("\n")
    return 0


def list_tasks(context: Context, args: argparse.Namespace) -> int:
    tasks = context.client.list_tasks(kinds=args.kind, statuses=args.status, overdue=args.overdue,
                                      page_size=200).to_list()
    if context.json:
        print_json(tasks, context.out)
        return 0
    table(([t.case_id, *_task_row(t)] for t in tasks), ["CASE", *TASK_HEADERS], context.out)
    return 0
