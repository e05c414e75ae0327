"""``nhm campaigns``, ``nhm keys``, ``nhm tenant``, ``nhm usage``: what an operator manages and watches."""

from __future__ import annotations

import argparse
from typing import Any

from nhm_sdk.cli._context import Context, Subparsers, command, group
from nhm_sdk.cli._output import enum_name, fields, print_json, table, when


def register(commands: Subparsers) -> None:
    campaigns = group(commands, "campaigns", "campaigns: number pools and their calling policy")
    command(campaigns, "list", list_campaigns, "list campaigns")
    p = command(campaigns, "show", show_campaign, "a campaign with its effective policy and today's usage")
    p.add_argument("campaign_id")
    for name, handler, text in (("create", create_campaign, "create a campaign"),
                                ("update", update_campaign, "change a campaign (only the options given)")):
        p = command(campaigns, name, handler, text)
        if name == "create":
            p.add_argument("name")
        else:
            p.add_argument("campaign_id")
            p.add_argument("--name")
        p.add_argument("--description")
        p.add_argument("--daily-cap", type=int, help="calls per number per day (default 100)")
        p.add_argument("--hourly-cap", type=int, help="calls per number per hour (default 50)")
        p.add_argument("--window", help="calling window in the prospect's time, e.g. 08:00-21:00")
        p.add_argument("--allow-at-risk", choices=["yes", "no"], help="let At Risk numbers place calls")
        p.add_argument("--fallback-number", help="caller ID to use when nothing is eligible (else fail closed)")
        p.add_argument("--cap-time-zone", help="IANA zone in which daily caps reset")
    p = command(campaigns, "delete", delete_campaign, "delete a campaign")
    p.add_argument("campaign_id")
    for name, handler in (("assign", assign_numbers), ("unassign", unassign_numbers)):
        p = command(campaigns, name, handler, f"{name} numbers to/from a campaign")
        p.add_argument("campaign_id")
        p.add_argument("phone_numbers", nargs="+")
    p = command(campaigns, "capacity", capacity_plan, "numbers needed per area code for the expected volume")
    p.add_argument("campaign_id")
    p.add_argument("--expected-daily-calls", type=int, default=0)

    keys = group(commands, "keys", "API keys of your tenant")
    p = command(keys, "list", list_keys, "list keys")
    p.add_argument("--all", action="store_true", help="include revoked keys")
    p = command(keys, "create", create_key, "create a key (its secret is printed once)")
    p.add_argument("name")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--for-tenant", default="", help="admin keys: create it for this tenant")
    p = command(keys, "revoke", revoke_key, "revoke a key; it stops working at once")
    p.add_argument("api_key_id")

    tenant = group(commands, "tenant", "your tenant and its business profile")
    p = command(tenant, "show", show_tenant, "the tenant and its business profile")
    p.add_argument("tenant_id", nargs="?", default="")
    p = command(tenant, "create", create_tenant, "create a tenant (admin key)")
    p.add_argument("tenant_id")
    p.add_argument("--name", default="")

    usage = group(commands, "usage", "today's usage against caps")
    p = command(usage, "campaign", campaign_usage, "every number of a campaign, today")
    p.add_argument("campaign_id")
    p = command(usage, "number", number_usage, "one number, today")
    p.add_argument("phone_number")
    p.add_argument("--campaign", default="")


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    if args.daily_cap is not None:
        policy["daily_cap_per_number"] = args.daily_cap
    if args.hourly_cap is not None:
        policy["hourly_cap_per_number"] = args.hourly_cap
    if args.window:
        start, _, end = args.window.partition("-")
        policy["calling_window_start"], policy["calling_window_end"] = start, end
    if args.allow_at_risk:
        policy["allow_at_risk"] = args.allow_at_risk == "yes"
    if args.fallback_number:
        policy["fallback_behavior"] = "FALLBACK_NUMBER"
        policy["fallback_phone_number"] = args.fallback_number
    if args.cap_time_zone:
        policy["cap_reset_time_zone"] = args.cap_time_zone
    return policy


def list_campaigns(context: Context, args: argparse.Namespace) -> int:
    campaigns = context.client.list_campaigns(page_size=200).to_list()
    if context.json:
        print_json(campaigns, context.out)
        return 0
    table(([c.id, c.name, c.number_count, c.policy.daily_cap_per_number, _window(c.policy), c.description]
           for c in campaigns), ["ID", "NAME", "NUMBERS", "DAILY CAP", "WINDOW", "DESCRIPTION"], context.out)
    return 0


def _window(policy: Any) -> str:
    start, end = policy.calling_window_start, policy.calling_window_end
    return f"{start.hours:02d}:{start.minutes:02d}-{end.hours:02d}:{end.minutes:02d}"


def show_campaign(context: Context, args: argparse.Namespace) -> int:
    campaign = context.client.get_campaign(args.campaign_id)
    if context.json:
        print_json(campaign, context.out)
        return 0
    policy = campaign.policy
    context.say(f"{campaign.name} ({campaign.id})")
    fields([("Description", campaign.description), ("Numbers", campaign.number_count),
            ("Daily cap per number", policy.daily_cap_per_number),
            ("Hourly cap per number", policy.hourly_cap_per_number),
            ("Calling window (prospect time)", _window(policy)), ("Allow At Risk", policy.allow_at_risk),
            ("Sticky caller ID", policy.sticky_caller_id),
            ("Per prospect", f"{policy.max_calls_per_prospect_per_day}/day, "
                             f"{policy.max_calls_per_prospect_per_week}/week"),
            ("Caps reset in", policy.cap_reset_time_zone), ("When nothing is eligible",
                                                            enum_name(policy, "fallback_behavior")),
            ("Fallback caller ID", policy.fallback_phone_number), ("Created", when(campaign.create_time))],
           context.out)
    return 0


def create_campaign(context: Context, args: argparse.Namespace) -> int:
    campaign = context.client.create_campaign(args.name, description=args.description or "",
                                              policy=_policy(args) or None)
    if context.json:
        print_json(campaign, context.out)
    else:
        context.say(f"created campaign {campaign.id} ({campaign.name})")
    return 0


def update_campaign(context: Context, args: argparse.Namespace) -> int:
    campaign = context.client.update_campaign(args.campaign_id, name=args.name, description=args.description,
                                              policy=_policy(args) or None)
    if context.json:
        print_json(campaign, context.out)
    else:
        context.say(f"updated campaign {campaign.id} ({campaign.name})")
    return 0


def delete_campaign(context: Context, args: argparse.Namespace) -> int:
    context.client.delete_campaign(args.campaign_id)
    context.say(f"deleted campaign {args.campaign_id}")
    return 0


def assign_numbers(context: Context, args: argparse.Namespace) -> int:
    campaign = context.client.assign_numbers(args.campaign_id, args.phone_numbers)
    context.say(f"{campaign.name}: {campaign.number_count} numbers")
    return 0


def unassign_numbers(context: Context, args: argparse.Namespace) -> int:
    campaign = context.client.unassign_numbers(args.campaign_id, args.phone_numbers)
    context.say(f"{campaign.name}: {campaign.number_count} numbers")
    return 0


def capacity_plan(context: Context, args: argparse.Namespace) -> int:
    plan = context.client.get_capacity_plan(args.campaign_id, expected_daily_calls=args.expected_daily_calls)
    if context.json:
        print_json(plan, context.out)
        return 0
    rows = [*plan.area_codes, plan.total]
    table(([a.area_code or "total", a.region, a.numbers_total, a.numbers_eligible, a.numbers_resting,
            a.numbers_warming, a.numbers_unhealthy, a.daily_capacity, a.expected_daily_calls, a.numbers_needed]
           for a in rows), ["AREA", "REGION", "NUMBERS", "ELIGIBLE", "RESTING", "WARMING", "UNHEALTHY",
                            "CAPACITY/DAY", "EXPECTED/DAY", "NEEDED"], context.out)
    if plan.short_of_numbers:
        context.say("\nshort of numbers: add the NEEDED numbers, or lower the expected volume")
    return 0


def list_keys(context: Context, args: argparse.Namespace) -> int:
    keys = context.client.list_api_keys(include_revoked=args.all).to_list()
    if context.json:
        print_json(keys, context.out)
        return 0
    table(([k.id, k.name, enum_name(k, "role"), k.prefix + "…", when(k.create_time), when(k.revoke_time)]
           for k in keys), ["ID", "NAME", "ROLE", "SECRET", "CREATED", "REVOKED"], context.out)
    return 0


def create_key(context: Context, args: argparse.Namespace) -> int:
    response = context.client.create_api_key(args.name, role="READ_ONLY" if args.read_only else "TENANT",
                                             tenant_id=args.for_tenant)
    if context.json:
        print_json(response, context.out)
    else:
        context.say(f"created key {response.api_key.id} ({response.api_key.name})")
        context.say(f"secret (shown once, store it now): {response.secret}")
    return 0


def revoke_key(context: Context, args: argparse.Namespace) -> int:
    key = context.client.revoke_api_key(args.api_key_id)
    context.say(f"revoked key {key.id} ({key.name})")
    return 0


def show_tenant(context: Context, args: argparse.Namespace) -> int:
    tenant = context.client.get_tenant(args.tenant_id)
    if context.json:
        print_json(tenant, context.out)
        return 0
    profile = tenant.business_profile
    context.say(f"{tenant.display_name or tenant.id} ({tenant.id})")
    fields([("Legal name", profile.legal_name), ("Address", profile.address), ("Website", profile.website),
            ("Call purpose", profile.call_purpose), ("Monthly volume", profile.expected_monthly_volume),
            ("Contact", f"{profile.contact_email} {profile.contact_phone}".strip())], context.out)
    return 0


def create_tenant(context: Context, args: argparse.Namespace) -> int:
    tenant = context.client.create_tenant(args.tenant_id, display_name=args.name)
    context.say(f"created tenant {tenant.id}")
    return 0


def campaign_usage(context: Context, args: argparse.Namespace) -> int:
    usage = context.client.get_campaign_usage(args.campaign_id)
    if context.json:
        print_json(usage, context.out)
        return 0
    context.say(f"{usage.calls_today} calls today of a capacity of {usage.capacity_today}")
    table(([u.phone_number, u.calls_today, u.daily_cap, u.calls_this_hour, u.hourly_cap, when(u.last_allocate_time)]
           for u in usage.numbers), ["NUMBER", "TODAY", "DAILY CAP", "THIS HOUR", "HOURLY CAP", "LAST USED"],
          context.out)
    return 0


def number_usage(context: Context, args: argparse.Namespace) -> int:
    usage = context.client.get_number_usage(args.phone_number, campaign_id=args.campaign)
    if context.json:
        print_json(usage, context.out)
    else:
        context.say(f"{usage.phone_number}: {usage.calls_today}/{usage.daily_cap} today, "
                    f"{usage.calls_this_hour}/{usage.hourly_cap} this hour")
    return 0
