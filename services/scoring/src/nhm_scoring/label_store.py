"""Repository of each source's current label per number: the newest observation wins, whatever the arrival order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nhm_platform.protoconv import as_utc
from nhm_platform.statements import set_filters
from nhm_scoring.assessment import LabelState
from nhm_scoring.events import Observation
from nhm_scoring.models import source_labels
from nhm_scoring.reputation import Label, Source


def apply(session: Session, tenant_id: str, events: Sequence[Observation]) -> None:
    """Record observations; an older one never replaces a newer one (a clean one clears that source's label)."""
    newest: dict[tuple[str, int], Observation] = {}
    for event in events:
        assert event.observe_time is not None
        key = (event.phone_number, event.source)
        seen = newest.get(key)
        if seen is None or seen.observe_time is None or event.observe_time >= seen.observe_time:
            newest[key] = event
    if not newest:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [{"tenant_id": tenant_id, "phone_number": e.phone_number, "source": e.source, "label": e.label,
             "raw_label": e.raw_label, "score": e.score, "observe_time": e.observe_time}
            for _, e in sorted(newest.items())]
    statement = insert(source_labels)
    excluded = statement.excluded
    session.execute(statement.on_conflict_do_update(
        index_elements=["tenant_id", "phone_number", "source"],
        set_={c: excluded[c] for c in ("label", "raw_label", "score", "observe_time")},
        where=source_labels.c.observe_time <= excluded.observe_time), rows)


def load(session: Session, tenant_id: str, phones: Collection[str]) -> dict[str, list[LabelState]]:
    t = source_labels.c
    found: dict[str, list[LabelState]] = defaultdict(list)
    for among in set_filters(session, t.phone_number, phones):
        for r in session.execute(select(t.phone_number, t.source, t.label, t.raw_label, t.score, t.observe_time)
                                 .where(t.tenant_id == tenant_id, among)):
            found[r.phone_number].append(LabelState(Source(r.source), Label(r.label), r.raw_label,
                                                    as_utc(r.observe_time), r.score))
    return found
