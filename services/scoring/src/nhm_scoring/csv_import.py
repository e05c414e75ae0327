"""A reputation vendor's CSV export, read into observations; a row that cannot be read is rejected on its own.

Header row (any order, any case): phone_number, source, label, observed_at (RFC 3339), and optionally score,
raw_label, event_id. ``label`` may be the common scale (clean, minor, spam, scam, blocked) or the vendor's words
("Spam Likely", "Nuisance", "[SPAM?]", "Fraud"); then raw_label keeps the words. Rows without an event_id get
one derived from their content, so importing the same file twice counts each row once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nhm_platform.errors import InvalidArgument
from nhm_scoring.events import Observation, Rejection
from nhm_scoring.reputation import Label, parse_label, parse_source

REQUIRED = ("phone_number", "source", "label", "observed_at")
OPTIONAL = ("score", "raw_label", "event_id")


@dataclass
class ParsedCsv:
    # (data row number, observation)
    rows: list[tuple[int, Observation]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def parse_observations(data: bytes) -> ParsedCsv:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument.for_field("csv", f"not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise InvalidArgument.for_field("csv", "empty: expected a header row naming " + ", ".join(REQUIRED))
    names = [h.strip().lower() for h in header]
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise InvalidArgument.for_field("csv", f"the header row lacks {', '.join(missing)} (it has "
                                               f"{', '.join(n for n in names if n) or 'nothing'})")
    columns = {n: names.index(n) for n in (*REQUIRED, *OPTIONAL) if n in names}
    parsed = ParsedCsv()
    try:
        for number, record in enumerate(reader, start=1):
            if not any(cell.strip() for cell in record):
                continue
            observation, rejection = _row(number, record, columns)
            if rejection is not None:
                parsed.rejections.append(rejection)
            else:
                assert observation is not None
                parsed.rows.append((number, observation))
    except csv.Error as exc:
        raise InvalidArgument.for_field("csv", f"malformed CSV at line {reader.line_num}: {exc}") from None
    return parsed


def _row(number: int, record: list[str], columns: dict[str, int]) -> tuple[Observation | None, Rejection | None]:
    def cell(name: str) -> str:
        position = columns.get(name)
        return record[position].strip() if position is not None and position < len(record) else ""

    event_id = cell("event_id")

    def reject(name: str, reason: str) -> tuple[None, Rejection]:
        return None, Rejection(number, event_id, reason, f"rows[{number}].{name}")

    phone = cell("phone_number")
    source = parse_source(cell("source"))
    if source is None:
        return reject("source", f"unknown source {cell('source')[:40]!r}; use a carrier (T-Mobile, AT&T, Verizon), "
                                "an engine (Hiya, First Orion, TNS), an app (Nomorobo, RoboKiller, YouMail, "
                                "Truecaller) or Other")
    label_text, raw_label = cell("label"), cell("raw_label")
    label = parse_label(label_text)
    if label is None:
        return reject("label", f"unknown label {label_text[:40]!r}; use clean, minor, spam, scam or blocked, or a "
                               "vendor's words such as 'Spam Likely'")
    if not raw_label and label_text.strip().lower() not in {lbl.name.lower() for lbl in Label}:
        raw_label = label_text
    observed = cell("observed_at")
    try:
        observe_time = datetime.fromisoformat(observed.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return reject("observed_at", f"{observed[:40]!r} is not an RFC 3339 time such as 2026-01-05T15:00:00Z")
    if observe_time.tzinfo is None:
        return reject("observed_at", f"{observed[:40]!r} has no time zone; add Z or an offset")
    observe_time = observe_time.astimezone(UTC)
    score_text = cell("score")
    score = None
    if score_text:
        try:
            score = float(score_text)
        except ValueError:
            return reject("score", f"{score_text[:40]!r} is not a number")
        if not math.isfinite(score):
            return reject("score", "must be a finite number")
    if not event_id:
        digest = hashlib.sha256("|".join((phone, source.name, label.name, raw_label, observe_time.isoformat(),
                                          score_text)).encode()).hexdigest()
        event_id = f"csv-{digest[:32]}"
    return Observation(event_id, phone, int(source), int(label), raw_label, score, observe_time), None
