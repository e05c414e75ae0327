"""Who labels numbers and what their labels mean: sources, labels, statuses and the carriers behind them.

The enums carry the contract's numbers (nhm.type.v1), so converting at the edge is a cast.
"""

from __future__ import annotations

import re
from enum import IntEnum


class HealthStatus(IntEnum):
    """The seed's four statuses, in order of severity."""

    UNSPECIFIED = 0
    HEALTHY = 1
    AT_RISK = 2
    FLAGGED = 3
    BLOCKED = 4

    @property
    def words(self) -> str:
        return _STATUS_WORDS[self]


_STATUS_WORDS = {HealthStatus.UNSPECIFIED: "Unknown", HealthStatus.HEALTHY: "Healthy",
                 HealthStatus.AT_RISK: "At Risk", HealthStatus.FLAGGED: "Flagged", HealthStatus.BLOCKED: "Blocked"}


class Source(IntEnum):
    UNSPECIFIED = 0
    TMOBILE = 1
    ATT = 2
    VERIZON = 3
    HIYA = 4
    FIRST_ORION = 5
    TNS = 6
    NOMOROBO = 7
    ROBOKILLER = 8
    YOUMAIL = 9
    TRUECALLER = 10
    OTHER = 11

    @property
    def display(self) -> str:
        return _SOURCE_NAMES[self]


class Label(IntEnum):
    UNSPECIFIED = 0
    CLEAN = 1
    MINOR = 2
    SPAM = 3
    SCAM = 4
    BLOCKED = 5

    @property
    def status(self) -> HealthStatus:
        return _LABEL_STATUS[self]

    @property
    def words(self) -> str:
        return _LABEL_WORDS[self]


class Carrier(IntEnum):
    UNSPECIFIED = 0
    TMOBILE = 1
    ATT = 2
    VERIZON = 3

    @property
    def key(self) -> str:
        """The key of NumberHealth.carrier_status: the nhm.type.v1.Carrier value name."""
        return f"CARRIER_{self.name}"

    @property
    def display(self) -> str:
        return {Carrier.TMOBILE: "T-Mobile", Carrier.ATT: "AT&T", Carrier.VERIZON: "Verizon"}.get(self, "")


CARRIERS = (Carrier.TMOBILE, Carrier.ATT, Carrier.VERIZON)

# Hiya labels for AT&T, First Orion for T-Mobile, TNS for Verizon; each carrier's own labels count for it.
# Apps (Nomorobo, RoboKiller, YouMail, Truecaller) and "other" count overall but map to no carrier.
SOURCE_CARRIER: dict[Source, Carrier] = {
    Source.HIYA: Carrier.ATT,
    Source.ATT: Carrier.ATT,
    Source.FIRST_ORION: Carrier.TMOBILE,
    Source.TMOBILE: Carrier.TMOBILE,
    Source.TNS: Carrier.VERIZON,
    Source.VERIZON: Carrier.VERIZON,
}

_SOURCE_NAMES = {
    Source.UNSPECIFIED: "Unknown source", Source.TMOBILE: "T-Mobile", Source.ATT: "AT&T", Source.VERIZON: "Verizon",
    Source.HIYA: "Hiya", Source.FIRST_ORION: "First Orion", Source.TNS: "TNS", Source.NOMOROBO: "Nomorobo",
    Source.ROBOKILLER: "RoboKiller", Source.YOUMAIL: "YouMail", Source.TRUECALLER: "Truecaller",
    Source.OTHER: "Other",
}
_LABEL_STATUS = {
    Label.UNSPECIFIED: HealthStatus.HEALTHY, Label.CLEAN: HealthStatus.HEALTHY, Label.MINOR: HealthStatus.AT_RISK,
    Label.SPAM: HealthStatus.FLAGGED, Label.SCAM: HealthStatus.FLAGGED, Label.BLOCKED: HealthStatus.BLOCKED,
}
_LABEL_WORDS = {
    Label.UNSPECIFIED: "unknown", Label.CLEAN: "Clean", Label.MINOR: "Potential Spam", Label.SPAM: "Spam Likely",
    Label.SCAM: "Scam Likely", Label.BLOCKED: "Blocked",
}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_SOURCE_ALIASES = {
    **{_key(s.name): s for s in Source if s is not Source.UNSPECIFIED},
    **{_key(f"REPUTATION_SOURCE_{s.name}"): s for s in Source if s is not Source.UNSPECIFIED},
    **{_key(s.display): s for s in Source if s is not Source.UNSPECIFIED},
    "tmo": Source.TMOBILE, "sprint": Source.TMOBILE, "metro": Source.TMOBILE, "atandt": Source.ATT,
    "tnscallguardian": Source.TNS, "callguardian": Source.TNS, "hiyaapp": Source.HIYA,
}

# Vendor vocabularies, reduced to the common scale (domain.md: minor vs major vs blocking).
_LABEL_ALIASES = {
    **{_key(label.name): label for label in Label if label is not Label.UNSPECIFIED},
    **{_key(f"REPUTATION_LABEL_{label.name}"): label for label in Label if label is not Label.UNSPECIFIED},
    "none": Label.CLEAN, "notlabeled": Label.CLEAN, "nolabel": Label.CLEAN, "ok": Label.CLEAN,
    "potentialspam": Label.MINOR, "nuisance": Label.MINOR, "nuisancelikely": Label.MINOR, "spam?": Label.MINOR,
    "suspectedspam": Label.MINOR, "telemarketing": Label.MINOR, "possiblespam": Label.MINOR,
    "spamlikely": Label.SPAM, "spamrisk": Label.SPAM, "robocall": Label.SPAM, "likelyspam": Label.SPAM,
    "scamlikely": Label.SCAM, "fraud": Label.SCAM, "fraudrisk": Label.SCAM, "scam": Label.SCAM,
    "potentialfraud": Label.SCAM, "block": Label.BLOCKED, "blocked": Label.BLOCKED,
}


def parse_source(text: str) -> Source | None:
    """A source from how vendors and operators write it ("Hiya", "First Orion", "AT&T", "tns")."""
    return _SOURCE_ALIASES.get(_key(text))


def parse_label(text: str) -> Label | None:
    """A label from a vendor's wording ("Spam Likely", "Nuisance", "[SPAM?]", "Fraud") or a scale name."""
    raw = text.strip().lower()
    if raw in ("[spam?]", "spam?"):
        return Label.MINOR
    return _LABEL_ALIASES.get(_key(raw))
