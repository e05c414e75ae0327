"""How the command line prints: aligned tables for people, JSON for scripts, progress on stderr."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from nhm_sdk._convert import from_timestamp, short_enum_name


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Any, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if isinstance(value, Message):
        value = to_dict(value)
    elif isinstance(value, list):
        value = [to_dict(v) if isinstance(v, Message) else v for v in value]
    json.dump(value, stream, indent=2, sort_keys=False, default=str)
    stream.write("\n")


def enum_name(message: Message, field: str) -> str:
    """The short name of an enum field's value, e.g. ``ACTIVE`` for LIFECYCLE_STATE_ACTIVE."""
    fd = message.DESCRIPTOR.fields_by_name[field]
    enum = fd.enum_type
    assert enum is not None
    return short_enum_name(enum, int(getattr(message, field)))


def enum_names(message: Message, field: str) -> list[str]:
    fd = message.DESCRIPTOR.fields_by_name[field]
    enum = fd.enum_type
    assert enum is not None
    return [short_enum_name(enum, int(v)) for v in getattr(message, field)]


def when(stamp: Any) -> str:
    """A Timestamp as "2026-01-05 15:00 UTC" ("" when unset)."""
    value = from_timestamp(stamp)
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def ago(stamp: Any, now: dt.datetime | None = None) -> str:
    value = from_timestamp(stamp)
    if value is None:
        return ""
    seconds = int(((now or dt.datetime.now(dt.UTC)) - value).total_seconds())
    if seconds < 0:
        return f"in {human_seconds(-seconds)}"
    return f"{human_seconds(seconds)} ago"


def human_seconds(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], out: TextIO | None = None,
          empty: str = "(none)") -> int:
    """Print an aligned table; returns the number of rows."""
    stream = out or sys.stdout
    materialised = [[_cell(v) for v in row] for row in rows]
    if not materialised:
        stream.write(empty + "\n")
        return 0
    widths = [len(h) for h in headers]
    for row in materialised:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
    stream.write(line + "\n")
    for row in materialised:
        stream.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() + "\n")
    return len(materialised)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def fields(pairs: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    """Print "label: value" lines, aligned, skipping empty values."""
    stream = out or sys.stdout
    shown = [(k, _cell(v)) for k, v in pairs if v not in (None, "", [], ())]
    width = max((len(k) for k, _ in shown), default=0)
    for key, value in shown:
        stream.write(f"{key + ':':<{width + 1}} {value}\n")


class Progress:
    """A progress bar on stderr when it is a terminal, else a line every 10%."""

    def __init__(self, total: int, label: str, out: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self._last_decile = -1

    def advance(self, count: int, note: str = "") -> None:
        self.done = min(self.total, self.done + count)
        share = self.done / self.total
        if self.tty:
            filled = int(share * 30)
            self.out.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {note}")
            self.out.flush()
        else:
            decile = int(share * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.out.write(f"{self.label}: {self.done}/{self.total} {note}\n")

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
