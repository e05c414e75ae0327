"""How accepted events change the buckets: increments per (number, hour), (number, day) and so on.

Each event lands in the buckets of its own time, so late and out-of-order events count where they belong.
The increments of a whole batch are added up here and written with one statement per bucket table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nhm_scoring.activity import epoch_day, epoch_hour
from nhm_scoring.events import CallOutcome, Complaint
from nhm_scoring.policy import MAX_SHORT_CALL_SECONDS
from nhm_scoring.reputation import Carrier, HealthStatus

CARRIER_BITS = {Carrier.TMOBILE: 1, Carrier.ATT: 2, Carrier.VERIZON: 4}
_CARRIER_COLUMNS = {Carrier.TMOBILE: "flagged_tmobile", Carrier.ATT: "flagged_att", Carrier.VERIZON: "flagged_verizon"}


@dataclass(frozen=True)
class Standing:
    """A number's health when its events are ingested: the weekly report counts calls placed while flagged."""

    status: HealthStatus = HealthStatus.HEALTHY
    carrier_flags: int = 0

    @property
    def flagged(self) -> bool:
        return self.status >= HealthStatus.FLAGGED


Counts = dict[str, int]


@dataclass
class Increments:
    hours: dict[tuple[str, int], Counts] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    days: dict[tuple[str, int], Counts] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    talk: dict[tuple[str, int, int], int] = field(default_factory=lambda: defaultdict(int))
    prospects: dict[tuple[str, int, str], int] = field(default_factory=lambda: defaultdict(int))

    @property
    def phones(self) -> set[str]:
        return {phone for phone, _ in self.days} | {phone for phone, _ in self.hours}


def fold_calls(calls: Iterable[CallOutcome], standings: Mapping[str, Standing]) -> Increments:
    out = Increments()
    for call in calls:
        assert call.start_time is not None
        phone, hour, day = call.phone_number, epoch_hour(call.start_time), epoch_day(call.start_time)
        daily = out.days[(phone, day)]
        if not call.is_outbound:
            daily["inbound"] += 1
            continue
        hourly = out.hours[(phone, hour)]
        hourly["outbound"] += 1
        daily["outbound"] += 1
        answered = call.is_answered
        if answered:
            hourly["answered"] += 1
            daily["answered"] += 1
            daily["talk_ms"] += call.talk_ms
            out.talk[(phone, day, min(MAX_SHORT_CALL_SECONDS, call.talk_ms // 1000))] += 1
        if call.is_blocked:
            daily["blocked"] += 1
        if call.is_608:
            hourly["sip608"] += 1
        standing = standings.get(phone, Standing())
        if standing.flagged:
            hourly["flagged_outbound"] += 1
            if answered:
                hourly["flagged_answered"] += 1
        for carrier, bit in CARRIER_BITS.items():
            if standing.carrier_flags & bit:
                hourly[_CARRIER_COLUMNS[carrier]] += 1
        if call.remote_number:
            out.prospects[(phone, day, call.remote_number)] += 1
    return out


def fold_complaints(complaints: Iterable[Complaint]) -> Increments:
    out = Increments()
    for complaint in complaints:
        assert complaint.report_time is not None
        out.days[(complaint.phone_number, epoch_day(complaint.report_time))]["complaints"] += 1
    return out


def carrier_flags(statuses: Mapping[Carrier, HealthStatus]) -> int:
    """The bits of the carriers that label a number Flagged or Blocked."""
    return sum(bit for carrier, bit in CARRIER_BITS.items() if statuses.get(carrier, 0) >= HealthStatus.FLAGGED)
