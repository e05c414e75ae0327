"""``nhm audit``: who changed what and when, from every audited service or one."""

from __future__ import annotations

import argparse
import itertools

from nhm.audit.v1 import audit_pb2 as audit
from nhm_sdk._config import AUDITED_SERVICES
from nhm_sdk.cli._context import Context, Subparsers, command
from nhm_sdk.cli._output import enum_name, print_json, table, when


def register(commands: Subparsers) -> None:
    p = command(commands, "audit", list_events, "who changed what and when (newest first)")
    p.add_argument("--service", choices=AUDITED_SERVICES, help="one service's trail (default: all, merged by time)")
    p.add_argument("--resource", default="", help="a resource and those under it, e.g. numbers/+14155550123, "
                                                  "campaigns/<id>, cases/<id>")
    p.add_argument("--type", action="append", dest="types", help="resource type: number, campaign, tenant, "
                                                                 "api_key, scoring_policy, case, task … (repeatable)")
    p.add_argument("--actor", default="", help="an actor's name (tenant:<key name>) or API key id")
    p.add_argument("--action", action="append", dest="actions", help="created, updated, transitioned … (repeatable)")
    p.add_argument("--since", help="only events at or after this time (RFC 3339)")
    p.add_argument("--until", help="only events before this time (RFC 3339)")
    p.add_argument("--oldest-first", action="store_true")
    p.add_argument("--limit", type=int, default=50, help="at most this many events (default 50)")


def list_events(context: Context, args: argparse.Namespace) -> int:
    filters = {"resource_types": args.types, "resource_name": args.resource, "actor": args.actor,
               "actions": args.actions, "start_time": args.since, "end_time": args.until,
               "oldest_first": args.oldest_first, "page_size": min(args.limit, 1000)}
    if args.service:
        found = context.client.list_audit_events(args.service, limit=args.limit, **filters).to_list()
    else:
        found = list(itertools.islice(context.client.audit_trail(**filters), args.limit))
    if context.json:
        print_json(found, context.out)
        return 0
    table(([when(e.event_time), e.service, e.resource_name, e.action, _actor(e), _changes(e), e.reason]
           for e in found), ["WHEN", "SERVICE", "RESOURCE", "ACTION", "BY", "CHANGES", "REASON"], context.out)
    return 0


def _actor(event: audit.AuditEvent) -> str:
    role = enum_name(event.actor, "role")
    return event.actor.name + ("" if role in ("TENANT", "ADMIN") else " (automatic)")


def _changes(event: audit.AuditEvent) -> str:
    shown = [f"{c.field}: {_short(c.old_value)} -> {_short(c.new_value)}" for c in event.changes[:3]]
    more = len(event.changes) - len(shown)
    return "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _short(value: str) -> str:
    if not value:
        return "-"
    return value if len(value) <= 40 else value[:37] + "..."
