"""A number's health as the allocator needs it: overall, per carrier, and what applies on every carrier.

Carrier-aware allocation: when the prospect's carrier is known, a number flagged only on *other* carriers
may be used. Labels from call-blocking apps (Nomorobo, RoboKiller, YouMail, Truecaller, unknown sources)
and behaviour-driven risk apply whatever the carrier, so they form the number's "universal" status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nhm_allocation.enums import Carrier, Health

# nhm.type.v1.ReputationSource numbers of the carriers and the engines that label for them.
_CARRIER_BOUND_SOURCES = {1, 2, 3, 4, 5, 6}  # T-Mobile, AT&T, Verizon, Hiya, First Orion, TNS
_CARRIER_KEYS = {"TMOBILE": Carrier.TMOBILE, "ATT": Carrier.ATT, "VERIZON": Carrier.VERIZON,
                 "OTHER": Carrier.OTHER}


@dataclass(frozen=True)
class HealthView:
    status: Health = Health.HEALTHY
    # What applies on every carrier (apps, behaviour, anything no single carrier explains).
    universal: Health = Health.HEALTHY
    # Each carrier's own view; empty when scoring gave none.
    carriers: Mapping[Carrier, Health] = field(default_factory=dict)

    def for_carrier(self, carrier: Carrier) -> Health:
        """The status a call terminating on `carrier` sees. Blocked anywhere stays Blocked."""
        if carrier is Carrier.UNSPECIFIED or not self.carriers or self.status >= Health.BLOCKED:
            return self.status
        own = self.carriers.get(carrier, Health.HEALTHY)
        return max(own, self.universal, Health.HEALTHY)

    @property
    def carrier_usable_somewhere(self) -> bool:
        """Whether some carrier sees the number as better than its overall status."""
        return any(self.for_carrier(c) < self.status for c in _CARRIER_KEYS.values())


UNKNOWN = HealthView()


def from_columns(status: int | None, universal: int, tmobile: int, att: int, verizon: int, other: int) -> HealthView:
    """The view as the replica stores it (status None: scoring has not reported on the number)."""
    if status is None:
        return UNKNOWN
    carriers = {carrier: Health(value) for carrier, value in (
        (Carrier.TMOBILE, tmobile), (Carrier.ATT, att), (Carrier.VERIZON, verizon), (Carrier.OTHER, other)) if value}
    return HealthView(Health(status), Health(universal), carriers)


def carrier_from_key(key: str) -> Carrier:
    """Scoring's carrier_status keys ("CARRIER_ATT", "att", "T-Mobile", ...) as a Carrier; others: OTHER."""
    normalized = re.sub(r"[^A-Z0-9]", "", key.upper().removeprefix("CARRIER_"))
    return _CARRIER_KEYS.get(normalized, Carrier.OTHER)


def health_view(status: int, carrier_status: Mapping[str, int], sources: Iterable[tuple[int, int]],
                risk_triggered: bool) -> HealthView:
    """Build the view from scoring's NumberHealth: overall status, carrier_status map, (source, status) pairs
    and whether any behavioural risk factor is triggered."""
    overall = Health(status) if status in Health._value2member_map_ else Health.UNKNOWN
    if overall is Health.UNKNOWN:
        overall = Health.HEALTHY
    carriers: dict[Carrier, Health] = {}
    for key, value in carrier_status.items():
        carrier = carrier_from_key(key)
        level = Health(value) if value in Health._value2member_map_ else Health.HEALTHY
        carriers[carrier] = max(carriers.get(carrier, Health.UNKNOWN), level)
    universal = Health.HEALTHY
    for source, level in sources:
        if source not in _CARRIER_BOUND_SOURCES and level in Health._value2member_map_:
            universal = max(universal, Health(level))
    if risk_triggered:
        universal = max(universal, min(overall, Health.AT_RISK))
    if overall > max(carriers.values(), default=Health.UNKNOWN):
        universal = max(universal, overall)  # no carrier explains the overall status
    return HealthView(overall, universal, carriers)
