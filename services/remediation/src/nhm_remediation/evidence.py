"""Evidence packets for disputes: a false-positive report built from our own data.

The number, the business (name, purpose, website) from the tenant's profile, the attestation the provider signs
its calls with, calls per day over the last 30 days with answer rate, average talk time and complaints, and
sample call times. Exported as JSON (one document) or CSV (one row per packet, for bulk submission forms).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from nhm_remediation.domain import BusinessProfile, NumberView
from nhm_remediation.ports import CallActivity


@dataclass(frozen=True)
class EvidencePacket:
    phone_number: str
    source: str
    business_name: str
    call_purpose: str
    website: str
    attestation: str
    # (date, outbound calls, answered calls), oldest first.
    calls_per_day: tuple[tuple[str, int, int], ...]
    average_calls_per_day: float
    answer_rate: float
    average_talk_time: timedelta
    complaint_count: int
    sample_call_times: tuple[datetime, ...]
    generate_time: datetime

    @property
    def total_calls(self) -> int:
        return sum(day[1] for day in self.calls_per_day)


def build(phone_number: str, source: str, number: NumberView | None, profile: BusinessProfile | None,
          activity: CallActivity, now: datetime) -> EvidencePacket:
    profile = profile or BusinessProfile()
    outbound = sum(d.outbound_calls for d in activity.days)
    answered = sum(d.answered_calls for d in activity.days)
    talk = sum((d.talk_time for d in activity.days), timedelta(0))
    return EvidencePacket(
        phone_number=phone_number,
        source=source,
        business_name=profile.legal_name,
        call_purpose=profile.call_purpose,
        website=profile.website,
        attestation=number.attestation if number is not None else "UNSPECIFIED",
        calls_per_day=tuple((d.date, d.outbound_calls, d.answered_calls) for d in activity.days),
        average_calls_per_day=round(outbound / len(activity.days), 2) if activity.days else 0.0,
        answer_rate=round(answered / outbound, 4) if outbound else 0.0,
        average_talk_time=talk / answered if answered else timedelta(0),
        complaint_count=sum(d.complaints for d in activity.days),
        sample_call_times=activity.sample_call_times,
        generate_time=now,
    )


def as_dict(packet: EvidencePacket) -> dict[str, object]:
    return {
        "phone_number": packet.phone_number,
        "source": packet.source,
        "business_name": packet.business_name,
        "call_purpose": packet.call_purpose,
        "website": packet.website,
        "attestation": packet.attestation,
        "calls_per_day": [{"date": d, "outbound_calls": o, "answered_calls": a} for d, o, a in packet.calls_per_day],
        "total_outbound_calls": packet.total_calls,
        "average_calls_per_day": packet.average_calls_per_day,
        "answer_rate": packet.answer_rate,
        "average_talk_time_seconds": round(packet.average_talk_time.total_seconds(), 1),
        "complaint_count": packet.complaint_count,
        "sample_call_times": [t.isoformat() for t in packet.sample_call_times],
        "generate_time": packet.generate_time.isoformat(),
    }


def to_json(packets: Sequence[EvidencePacket]) -> bytes:
    return json.dumps({"packets": [as_dict(p) for p in packets]}, indent=2).encode()


CSV_COLUMNS = ("phone_number", "source", "business_name", "call_purpose", "website", "attestation",
               "total_outbound_calls", "average_calls_per_day", "answer_rate", "average_talk_time_seconds",
               "complaint_count", "calls_per_day", "sample_call_times", "generate_time")


def to_csv(packets: Sequence[EvidencePacket]) -> bytes:
    """One row per packet; calls per day as "date:outbound/answered" and sample times joined by ";"."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for packet in packets:
        row = as_dict(packet)
        row["calls_per_day"] = ";".join(f"{d}:{o}/{a}" for d, o, a in packet.calls_per_day)
        row["sample_call_times"] = ";".join(t.isoformat() for t in packet.sample_call_times)
        writer.writerow({k: _cell(row[k]) for k in CSV_COLUMNS})
    return out.getvalue().encode()


def _cell(value: object) -> object:
    # Spreadsheet formula injection: a cell starting with = + - @ is shown as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not value[1:2].isdigit():
        return "'" + value
    return value


def filename(phone_number: str, task_id: str, extension: str) -> str:
    return f"evidence-{phone_number.lstrip('+')}-{task_id or 'all'}.{extension}"
