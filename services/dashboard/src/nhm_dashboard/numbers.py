"""The Numbers page: filters, sort and keyset paging over every outbound number, one page at a time.

A page costs one list call plus two batch gets for the facts the list does not carry (usage today from the
allocation service, and lifecycle state or health from the other list's owner), made side by side: three calls
whatever the page size, none per row. Nothing reads more than the page shown, so a page costs the same with 100
numbers or 100,000.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.type.v1 import types_pb2 as types
from nhm_dashboard import vocabulary as words
from nhm_dashboard.gateway import TenantApi

_AREA_CODE = re.compile(r"^[0-9]{1,5}$")
_SEARCH_NOISE = re.compile(r"[\s().\-]")
_NO_CALLS = re.compile(r"^0 outbound calls")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-=.~]{1,2048}$")


@dataclass(frozen=True)
class NumberQuery:
    """What the Numbers page shows, as it appears in the URL."""

    status: str = ""
    campaign: str = ""
    area_code: str = ""
    carrier: str = ""
    search: str = ""
    sort: str = words.HEALTH_ORDER_SORT
    page: str = ""
    # Why a filter was ignored, in words.
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> NumberQuery:
        problems: list[str] = []
        status = args.get("status", "").strip().lower()
        if status and status not in words.STATUS_BY_KEY:
            problems.append(f"Unknown status {status!r}: showing every status.")
            status = ""
        carrier = args.get("carrier", "").strip().lower()
        if carrier and carrier not in words.SOURCE_KEYS:
            problems.append(f"Unknown carrier or app {carrier!r}: showing every source.")
            carrier = ""
        area_code = args.get("area_code", "").strip()
        if area_code and not _AREA_CODE.match(area_code):
            problems.append("An area code is 1 to 5 digits, e.g. 415: showing every area code.")
            area_code = ""
        sort = args.get("sort", "").strip() or words.HEALTH_ORDER_SORT
        if sort not in words.SORTS:
            problems.append(f"Unknown sort {sort!r}: sorted by number.")
            sort = words.HEALTH_ORDER_SORT
        page = args.get("page", "").strip()
        if page and not _TOKEN.match(page):
            problems.append("That page link is not valid: showing the first page.")
            page = ""
        search = args.get("q", "").strip()[:32]
        query = cls(status=status, campaign=args.get("campaign", "").strip()[:100], area_code=area_code,
                    carrier=carrier, search=search, sort=sort, page=page)
        if query.by_registry and (status or carrier):
            problems.append(f"Status and carrier filters apply when sorted by number; "
                            f"sorted by {words.SORTS[sort][0].lower()} they are left out.")
            query = replace(query, status="", carrier="")
        return replace(query, problems=tuple(problems))

    @property
    def by_registry(self) -> bool:
        return self.sort != words.HEALTH_ORDER_SORT

    @property
    def prefix(self) -> str:
        return search_prefix(self.search)

    def args(self, **changes: str) -> dict[str, str]:
        """URL arguments for this query with some changed (empty values left out)."""
        values = {"status": self.status, "campaign": self.campaign, "area_code": self.area_code,
                  "carrier": self.carrier, "q": self.search, "sort": self.sort, "page": self.page}
        values.update(changes)
        if values.get("sort") == words.HEALTH_ORDER_SORT:
            values.pop("sort")
        return {k: v for k, v in values.items() if v}

    def health_filters(self) -> dict[str, Any]:
        """The SDK's list_health arguments for this query (page size and token apart)."""
        return {"statuses": [words.STATUS_BY_KEY[self.status].number] if self.status else None,
                "source": words.SOURCE_KEYS[self.carrier] if self.carrier else None,
                "campaign_id": self.campaign, "area_code": self.area_code, "phone_number_prefix": self.prefix}

    def numbers_filters(self) -> dict[str, Any]:
        """The SDK's list_numbers arguments for this query (page size and token apart)."""
        _, order_by, descending = words.SORTS[self.sort]
        return {"campaign_id": self.campaign, "area_code": self.area_code, "phone_number_prefix": self.prefix,
                "order_by": order_by, "descending": descending}


def search_prefix(text: str) -> str:
    """The E.164 prefix a search means: "+1 (415) 867" → "+1415867"; bare NANP digits get +1."""
    cleaned = _SEARCH_NOISE.sub("", text)
    if not cleaned:
        return ""
    plus = cleaned.startswith("+")
    digits = "".join(ch for ch in cleaned if ch.isdigit())
    if not digits:
        return ""
    if plus:
        return "+" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    if len(digits) <= 10:
        return "+1" + digits
    return "+" + digits


@dataclass(frozen=True)
class SourceLabel:
    source: str
    label: str
    status: words.Status


@dataclass(frozen=True)
class NumberRow:
    phone: str
    status: words.Status
    score: int | None
    summary: str
    # Non-clean labels, worst first.
    labels: tuple[SourceLabel, ...]
    # Each carrier's view, e.g. ("AT&T", Flagged).
    carriers: tuple[tuple[str, words.Status], ...]
    calls_today: int | None
    daily_cap: int | None
    answer_rate: float | None
    answer_rate_detail: str
    state: str
    campaigns: tuple[str, ...]


@dataclass(frozen=True)
class NumbersPage:
    query: NumberQuery
    rows: list[NumberRow]
    next_page: str
    # Counts per status for the filters (sorted by number only).
    counts: dict[str, int] | None
    campaigns: list[tuple[str, str]]


def load_page(api: TenantApi, query: NumberQuery, page_size: int) -> NumbersPage:
    names = api.campaign_names()
    campaigns = sorted(names.items(), key=lambda kv: kv[1])
    if query.by_registry:
        listed = api.numbers_page(query.numbers_filters(), page_size, query.page)
        phones = [n.phone_number for n in listed.items]
        health, usage = api.at_once(lambda: api.health_of(phones), lambda: api.usage_of(phones))
        rows = [build_row(n.phone_number, health.get(n.phone_number), n, usage.get(n.phone_number), names)
                for n in listed.items]
        return NumbersPage(query, rows, listed.next_page_token, None, campaigns)
    page = api.health_page(query.health_filters(), page_size, query.page)
    phones = [h.phone_number for h in page.items]
    numbers, usage = api.at_once(lambda: api.numbers_of(phones), lambda: api.usage_of(phones))
    rows = [build_row(h.phone_number, h, numbers.get(h.phone_number), usage.get(h.phone_number), names)
            for h in page.items]
    listed_counts = page.response.counts
    counts = {"healthy": listed_counts.healthy, "at-risk": listed_counts.at_risk, "flagged": listed_counts.flagged,
              "blocked": listed_counts.blocked, "total": listed_counts.total}
    return NumbersPage(query, rows, page.next_page_token, counts, campaigns)


def build_row(phone: str, health: sco.NumberHealth | None, number: reg.Number | None,
              usage: alloc.NumberUsage | None, campaign_names: Mapping[str, str]) -> NumberRow:
    labels: list[SourceLabel] = []
    carriers: list[tuple[str, words.Status]] = []
    answer_rate: float | None = None
    answer_detail = ""
    if health is not None:
        for source in sorted(health.sources, key=lambda s: -s.status):
            if source.label in (types.REPUTATION_LABEL_UNSPECIFIED, types.REPUTATION_LABEL_CLEAN):
                continue
            labels.append(SourceLabel(words.name_of(words.SOURCE_NAMES, source.source),
                                      source.raw_label or words.name_of(words.LABEL_NAMES, source.label),
                                      words.status(source.status)))
        carriers = [(words.carrier_name(name), words.status(value))
                    for name, value in sorted(health.carrier_status.items())]
        for factor in health.factors:
            if factor.kind == words.ANSWER_RATE_FACTOR:
                answer_detail = factor.detail
                # No outbound call in the window: there is no answer rate to show (the value reads 0).
                answer_rate = None if _NO_CALLS.match(factor.detail) else factor.value
    campaign_ids = list(number.campaign_ids) if number is not None else list(health.campaign_ids if health else [])
    return NumberRow(
        phone=phone,
        status=words.status(health.status) if health is not None else words.UNKNOWN_STATUS,
        score=health.score if health is not None else None,
        summary=health.summary if health is not None else "",
        labels=tuple(labels),
        carriers=tuple(carriers),
        calls_today=usage.calls_today if usage is not None else None,
        daily_cap=usage.daily_cap if usage is not None else None,
        answer_rate=answer_rate,
        answer_rate_detail=answer_detail,
        state=words.name_of(words.STATE_NAMES, number.state) if number is not None else "—",
        campaigns=tuple(campaign_names.get(c, c) for c in campaign_ids),
    )
