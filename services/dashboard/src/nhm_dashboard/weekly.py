"""The weekly report: the scoring service's report in words, for the page and as CSV."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime

from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_dashboard import overview
from nhm_dashboard import vocabulary as words
from nhm_sdk import from_timestamp, short_enum_name

# A number that had no status a week ago (added during the week).
NEW = words.Status("new", 0, "New", "Added this week.")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")


@dataclass(frozen=True)
class ChangeRow:
    phone: str
    before: words.Status
    after: words.Status
    score: int
    cause: str
    time: datetime | None


@dataclass(frozen=True)
class CauseRow:
    description: str
    numbers: int


@dataclass(frozen=True)
class CarrierRow:
    carrier: str
    calls: int
    from_flagged: int
    share: float


@dataclass(frozen=True)
class WeeklyView:
    tenant: str
    start: datetime | None
    end: datetime | None
    tiles: list[overview.StatusTile]
    total_now: int
    total_week_ago: int
    newly_at_risk: list[str]
    changes: list[ChangeRow]
    causes: list[CauseRow]
    carriers: list[CarrierRow]
    answer_rate_flagged: float
    answer_rate_clean: float
    outbound_calls: int


def view(report: sco.WeeklyReport, tenant_name: str) -> WeeklyView:
    changes = [ChangeRow(t.phone_number, words.status(t.from_status) if t.from_status else NEW,
                         words.status(t.to_status), t.score, t.cause, from_timestamp(t.transition_time))
               for t in report.changed]
    causes = [CauseRow(c.description, c.numbers) for c in report.top_causes]
    carriers = [CarrierRow(words.carrier_name(short_enum_name(types.Carrier.DESCRIPTOR, s.carrier)),
                           s.calls, s.calls_from_flagged, s.share) for s in report.flagged_call_share]
    return WeeklyView(
        tenant=tenant_name, start=from_timestamp(report.period_start), end=from_timestamp(report.period_end),
        tiles=overview.status_tiles(report.counts_now, report.counts_week_ago),
        total_now=report.counts_now.total, total_week_ago=report.counts_week_ago.total,
        newly_at_risk=list(report.newly_at_risk), changes=changes, causes=causes, carriers=carriers,
        answer_rate_flagged=report.answer_rate_flagged, answer_rate_clean=report.answer_rate_clean,
        outbound_calls=report.outbound_calls)


def to_csv(report: WeeklyView) -> str:
    """One CSV with a ``section`` column, so a spreadsheet can filter each part of the report."""
    out = io.StringIO()
    writer = _SafeWriter(out)
    writer.writerow(["section", "item", "value", "previous", "change", "detail", "time"])
    start = report.start.isoformat() if report.start else ""
    end = report.end.isoformat() if report.end else ""
    writer.writerow(["period", "start", start, "", "", "", ""])
    writer.writerow(["period", "end", end, "", "", "", ""])
    for tile in report.tiles:
        writer.writerow(["status", tile.status.label, tile.count, tile.week_ago, tile.change, tile.status.meaning, ""])
    writer.writerow(["status", "Total", report.total_now, report.total_week_ago,
                     report.total_now - report.total_week_ago, "", ""])
    writer.writerow(["calls", "outbound calls", report.outbound_calls, "", "", "", ""])
    writer.writerow(["calls", "answer rate, Flagged or Blocked numbers", f"{report.answer_rate_flagged:.4f}",
                     "", "", "", ""])
    writer.writerow(["calls", "answer rate, clean numbers", f"{report.answer_rate_clean:.4f}", "", "", "", ""])
    for carrier in report.carriers:
        writer.writerow(["carrier share", carrier.carrier, carrier.from_flagged, carrier.calls, "",
                         f"{carrier.share:.4f} of calls from Flagged or Blocked numbers", ""])
    for phone in report.newly_at_risk:
        writer.writerow(["newly at risk", phone, "At Risk", "Healthy", "", "", ""])
    for change in report.changes:
        writer.writerow(["changed", change.phone, change.after.label, change.before.label, "", change.cause,
                         change.time.isoformat() if change.time else ""])
    for cause in report.causes:
        writer.writerow(["top cause", cause.description, cause.numbers, "", "", "numbers", ""])
    return out.getvalue()


class _SafeWriter:
    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: list[object]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])


def safe_cell(value: object) -> object:
    """Text a spreadsheet would run as a formula (= + - @ first) gets a leading quote; numbers and E.164
    numbers stay as they are. Causes and labels come from outside feeds."""
    if not isinstance(value, str) or not value or _PLAIN_NUMBER.match(value):
        return value
    return "'" + value if value[0] in "=+-@\t\r" else value
