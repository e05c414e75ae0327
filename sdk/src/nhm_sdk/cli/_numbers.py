"""``nhm numbers``: import from CSV, list, show (with health factors and history), transition, retire."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhm.registry.v1 import registry_pb2 as reg
from nhm_sdk._convert import fill
from nhm_sdk._errors import AlreadyExistsError, InvalidArgumentError, NhmError, UnavailableError
from nhm_sdk.cli._context import Context, Subparsers, command, group
from nhm_sdk.cli._health import print_health_detail
from nhm_sdk.cli._output import Progress, ago, enum_name, fields, print_json, table, to_dict, when

CSV_COLUMNS = ("phone_number", "display_name", "provider", "attestation", "inbound_enabled", "labels",
               "campaign_ids", "start_warming")


def register(commands: Subparsers) -> None:
    numbers = group(commands, "numbers", "register, list and inspect outbound numbers")

    p = command(numbers, "import", import_numbers, "import numbers from a CSV file (per-row errors reported)")
    p.add_argument("file", type=Path, help="CSV with a header row: " + ", ".join(CSV_COLUMNS)
                   + " (only phone_number is required; labels as k=v;k=v, campaign_ids as id;id)")
    p.add_argument("--campaign", action="append", default=[], help="assign every number to this campaign")
    p.add_argument("--batch-size", type=int, default=500, help="numbers per request (default 500)")
    p.add_argument("--start-warming", action="store_true", help="start every number WARMING")

    p = command(numbers, "list", list_numbers, "list numbers (filters combine)")
    p.add_argument("--state", action="append", help="ACTIVE, QUARANTINED, RESTING, WARMING or RETIRED")
    p.add_argument("--campaign", default="", help="numbers of this campaign")
    p.add_argument("--area-code", default="")
    p.add_argument("--region", default="", help="state or region, e.g. CA")
    p.add_argument("--prefix", default="", help="E.164 prefix, e.g. +1415")
    p.add_argument("--label", action="append", default=[], help="key=value (repeatable)")
    p.add_argument("--limit", type=int, default=None)

    p = command(numbers, "show", show_number, "one number: registry record, health factors, history, usage")
    p.add_argument("phone_number")

    p = command(numbers, "transition", transition_number, "move a number to another lifecycle state")
    p.add_argument("phone_number")
    p.add_argument("state", help="ACTIVE, QUARANTINED, RESTING, WARMING or RETIRED")
    p.add_argument("--reason", default="by operator")
    p.add_argument("--rest-days", type=float, default=None, help="for RESTING: days to rest")

    p = command(numbers, "retire", retire_number, "retire a number for good")
    p.add_argument("phone_number")
    p.add_argument("--reason", default="retired by operator")


# --- import ---------------------------------------------------------------------------------------------------

@dataclass
class Row:
    line: int
    spec: reg.NumberSpec


@dataclass
class ImportResult:
    created: list[reg.Number] = field(default_factory=list)
    existing: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, number, why)


def read_rows(path: Path, campaigns: Sequence[str], start_warming: bool,
              result: ImportResult) -> list[Row]:
    rows: list[Row] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "phone_number" not in [f.strip() for f in reader.fieldnames]:
            raise ValueError(f"{path}: the header row must name a phone_number column")
        unknown = [f for f in reader.fieldnames if f.strip() not in CSV_COLUMNS]
        if unknown:
            raise ValueError(f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(CSV_COLUMNS)}")
        for record in reader:
            line = reader.line_num
            values = {k.strip(): (v or "").strip() for k, v in record.items() if k is not None}
            try:
                rows.append(Row(line, _spec(values, campaigns, start_warming)))
            except (ValueError, TypeError) as exc:
                result.errors.append((line, values.get("phone_number", ""), str(exc)))
    return rows


def _spec(values: dict[str, str], campaigns: Sequence[str], start_warming: bool) -> reg.NumberSpec:
    number = values.get("phone_number", "")
    if not number:
        raise ValueError("phone_number is empty")
    spec = reg.NumberSpec(phone_number=number, display_name=values.get("display_name", ""),
                          provider=values.get("provider", ""))
    if values.get("attestation"):
        fill(spec, {"attestation": values["attestation"]})
    spec.inbound_enabled = values.get("inbound_enabled", "").lower() in ("1", "true", "yes", "y")
    spec.start_warming = start_warming or values.get("start_warming", "").lower() in ("1", "true", "yes", "y")
    for pair in filter(None, values.get("labels", "").split(";")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"labels: {pair!r} is not key=value")
        spec.labels[key.strip()] = value.strip()
    ids = [c for c in values.get("campaign_ids", "").split(";") if c] + list(campaigns)
    spec.campaign_ids.extend(dict.fromkeys(ids))
    return spec


def _batches(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _row_index(field_path: str) -> int | None:
    # "numbers[12].phone_number" → 12
    if not field_path.startswith("numbers["):
        return None
    try:
        return int(field_path[len("numbers["):field_path.index("]")])
    except ValueError:
        return None


def import_batch(context: Context, batch: list[Row], result: ImportResult) -> None:
    """Import one batch. The server refuses a batch whole and names each bad row (``numbers[i]…``): those rows
    are reported (rows that already exist apart) and the rest sent again."""
    pending = list(batch)
    while pending:
        try:
            created = context.client.import_numbers([row.spec for row in pending])
        except (InvalidArgumentError, AlreadyExistsError) as exc:
            named: dict[int, str] = {}
            for violation in exc.field_violations:
                index = _row_index(violation.field)
                if index is not None and index < len(pending):
                    named.setdefault(index, f"{violation.field.split('.', 1)[-1]}: {violation.description}")
            if not named:
                _import_one_by_one(context, pending, result)
                return
            for index, why in sorted(named.items()):
                row = pending[index]
                if isinstance(exc, AlreadyExistsError) or why.endswith("already exists"):
                    result.existing.append((row.line, row.spec.phone_number))
                else:
                    result.errors.append((row.line, row.spec.phone_number, why))
            pending = [row for i, row in enumerate(pending) if i not in named]
            continue
        result.created.extend(created)
        return


def _import_one_by_one(context: Context, rows: list[Row], result: ImportResult) -> None:
    for row in rows:
        try:
            result.created.append(context.client.create_number(row.spec))
        except AlreadyExistsError:
            result.existing.append((row.line, row.spec.phone_number))
        except InvalidArgumentError as exc:
            result.errors.append((row.line, row.spec.phone_number, exc.message))


def import_numbers(context: Context, args: argparse.Namespace) -> int:
    result = ImportResult()
    rows = read_rows(args.file, args.campaign, args.start_warming, result)
    progress = Progress(len(rows), f"importing {args.file.name}", context.err)
    for batch in _batches(rows, max(1, args.batch_size)):
        import_batch(context, batch, result)
        progress.advance(len(batch), f"({len(result.errors)} errors)")
    progress.finish()
    if context.json:
        print_json({"created": len(result.created), "already_existed": [n for _, n in result.existing],
                    "errors": [{"line": line, "phone_number": n, "error": why} for line, n, why in result.errors]},
                   context.out)
    else:
        context.say(f"{len(result.created)} created, {len(result.existing)} already existed, "
                    f"{len(result.errors)} rejected")
        if result.errors:
            table(sorted(result.errors), ["LINE", "NUMBER", "ERROR"], context.out)
    return 1 if result.errors else 0


# --- list and show --------------------------------------------------------------------------------------------

def list_numbers(context: Context, args: argparse.Namespace) -> int:
    labels = dict(pair.split("=", 1) for pair in args.label if "=" in pair)
    numbers = context.client.list_numbers(states=args.state, campaign_id=args.campaign, area_code=args.area_code,
                                          region=args.region, phone_number_prefix=args.prefix, labels=labels,
                                          limit=args.limit, page_size=500)
    if context.json:
        print_json(list(numbers), context.out)
        return 0
    table(([n.phone_number, enum_name(n, "state"), n.area_code, n.region, len(n.campaign_ids), n.display_name,
            ago(n.state_time)] for n in numbers),
          ["NUMBER", "STATE", "AREA", "REGION", "CAMPAIGNS", "NAME", "SINCE"], context.out)
    return 0


def show_number(context: Context, args: argparse.Namespace) -> int:
    client = context.client
    number = client.get_number(args.phone_number)
    transitions = client.list_number_transitions(number.phone_number, limit=10).to_list()
    health, history, usage, problems = None, [], None, []
    try:
        health = client.get_health(number.phone_number)
        history = client.health_history(number.phone_number, limit=10).to_list()
    except NhmError as exc:
        problems.append(f"health: {exc}")
    try:
        usage = client.get_number_usage(number.phone_number)
    except NhmError as exc:
        if not isinstance(exc, UnavailableError):
            problems.append(f"usage: {exc}")
    if context.json:
        payload: dict[str, Any] = {"number": number, "transitions": transitions}
        if health is not None:
            payload.update(health=health, health_history=history)
        if usage is not None:
            payload["usage"] = usage
        print_json(_jsonable(payload), context.out)
        return 0
    context.say(f"{number.phone_number}  {enum_name(number, 'state')}")
    fields([("Name", number.display_name), ("Location", f"{number.area_code} {number.region} {number.country}"),
            ("Time zone", number.time_zone), ("Provider", number.provider),
            ("Attestation", enum_name(number, "attestation")), ("Inbound", number.inbound_enabled),
            ("Campaigns", list(number.campaign_ids)), ("Labels", [f"{k}={v}" for k, v in number.labels.items()]),
            ("Rest until", when(number.rest_until)), ("In state since", when(number.state_time))], context.out)
    if usage is not None:
        context.say(f"\nToday: {usage.calls_today}/{usage.daily_cap} calls, this hour {usage.calls_this_hour}/"
                    f"{usage.hourly_cap}")
    if health is not None:
        context.say("")
        print_health_detail(context, health, history)
    if transitions:
        context.say("\nLifecycle")
        table(([when(t.transition_time), f"{enum_name(t, 'from_state')} -> {enum_name(t, 'to_state')}", t.actor,
                t.reason] for t in transitions), ["WHEN", "CHANGE", "BY", "REASON"], context.out)
    for problem in problems:
        context.warn(problem)
    return 0


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, list):
            result[key] = [to_dict(v) for v in value]
        elif value is not None:
            result[key] = to_dict(value)
    return result


def transition_number(context: Context, args: argparse.Namespace) -> int:
    rest_until = None
    if args.rest_days is not None:
        rest_until = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.rest_days)
    response = context.client.transition_number(args.phone_number, args.state, reason=args.reason,
                                                rest_until=rest_until)
    if context.json:
        print_json(response, context.out)
    else:
        t = response.transition
        context.say(f"{response.number.phone_number}: {enum_name(t, 'from_state')} -> {enum_name(t, 'to_state')}")
    return 0


def retire_number(context: Context, args: argparse.Namespace) -> int:
    number = context.client.retire_number(args.phone_number, reason=args.reason)
    if context.json:
        print_json(number, context.out)
    else:
        context.say(f"{number.phone_number}: {enum_name(number, 'state')}")
    return 0
