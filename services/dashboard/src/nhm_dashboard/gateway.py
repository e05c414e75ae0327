"""The dashboard's only way to the services: one shared SDK client, each call made with the signed-in key.

The client holds no key of its own: every call carries ``authorization: Bearer <session key>``, so each page
sees exactly what that key's tenant may see and the services enforce it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm_dashboard.settings import DashboardSettings
from nhm_sdk import Client, ClientConfig, Page, TlsConfig

T = TypeVar("T")
R = TypeVar("R")


class _Keyed(Protocol):
    phone_number: str


def client_config(settings: DashboardSettings) -> ClientConfig:
    tls = None
    if settings.upstream_ca_file or settings.upstream_cert_file:
        tls = TlsConfig(ca_file=settings.upstream_ca_file or None, cert_file=settings.upstream_cert_file or None,
                        key_file=settings.upstream_key_file or None)
    return ClientConfig(registry_target=settings.registry_target, scoring_target=settings.scoring_target,
                        allocation_target=settings.allocation_target,
                        remediation_target=settings.remediation_target, tls=tls,
                        user_agent="nhm-dashboard")


class Gateway:
    """Owns the SDK client and a small pool for calls made side by side (a page's batch gets, one per campaign)."""

    def __init__(self, settings: DashboardSettings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or Client(client_config(settings))
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.fanout_workers),
                                        thread_name_prefix="dashboard-fanout")
        self._names_lock = threading.Lock()
        # API key -> (monotonic time the names expire, campaign id -> name).
        self._campaign_names: dict[str, tuple[float, dict[str, str]]] = {}

    def campaign_names(self, api_key: str, fetch: Callable[[], dict[str, str]]) -> dict[str, str]:
        """A key's campaign names, fetched at most once per campaign_names_ttl."""
        now = time.monotonic()
        with self._names_lock:
            cached = self._campaign_names.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        names = fetch()
        if self.settings.campaign_names_ttl > 0:
            with self._names_lock:
                self._campaign_names = {k: v for k, v in self._campaign_names.items() if v[0] > now}
                self._campaign_names[api_key] = (now + self.settings.campaign_names_ttl, names)
        return names

    def as_key(self, api_key: str) -> TenantApi:
        return TenantApi(self, api_key)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


class TenantApi:
    """The calls the pages make, on behalf of one API key."""

    def __init__(self, gateway: Gateway, api_key: str) -> None:
        self._gateway = gateway
        self._client = gateway.client
        self._api_key = api_key
        self._metadata: Sequence[tuple[str, str]] = (("authorization", f"Bearer {api_key}"),)
        self._timeout = gateway.settings.rpc_timeout

    def _kw(self) -> dict[str, Any]:
        return {"metadata": self._metadata, "timeout": self._timeout}

    def at_once(self, *calls: Callable[[], Any]) -> list[Any]:
        """The calls' results, the calls made side by side in the pool (they must not use the pool themselves)."""
        return self._gateway.map(lambda call: call(), calls)

    def batches(self, phones: Sequence[str]) -> list[Sequence[str]]:
        """phones in slices a batch get accepts (DashboardSettings.batch_get_size each)."""
        size = self._gateway.settings.batch_get_size
        return [phones[i:i + size] for i in range(0, len(phones), size)]

    def _found(self, phones: Sequence[str], fetch: Callable[[Sequence[str]], Iterable[_Keyed]]) -> dict[str, Any]:
        """phone -> item of each number a batch get finds (slice after slice); the others are left out."""
        return {item.phone_number: item for batch in self.batches(phones) for item in fetch(batch)}

    # --- registry ---------------------------------------------------------------------------------------------

    def tenant(self) -> reg.Tenant:
        return self._client.get_tenant(**self._kw())

    def number(self, phone: str) -> reg.Number:
        return self._client.get_number(phone, **self._kw())

    def numbers_of(self, phones: Sequence[str]) -> dict[str, reg.Number]:
        """The tenant's numbers among phones (one batch get per batch_get_size numbers)."""
        return self._found(phones, lambda batch: self._client.batch_get_numbers(batch, **self._kw()).numbers)

    def number_transitions(self, phone: str, limit: int) -> list[reg.NumberTransition]:
        return self._client.list_number_transitions(phone, page_size=limit, limit=limit, **self._kw()).to_list()

    def campaigns(self) -> list[reg.Campaign]:
        return self._client.list_campaigns(page_size=1000, **self._kw()).to_list()

    def campaign_names(self) -> dict[str, str]:
        """Campaign id -> name, reused for a while (see DashboardSettings.campaign_names_ttl)."""
        return self._gateway.campaign_names(self._api_key, lambda: {c.id: c.name for c in self.campaigns()})

    def quarantine(self, phone: str, reason: str) -> reg.Number:
        return self._client.transition_number(phone, "QUARANTINED", reason=reason, **self._kw()).number

    def numbers_page(self, filters: Mapping[str, Any], page_size: int,
                     page_token: str) -> Page[reg.Number, reg.ListNumbersResponse]:
        """One page of list_numbers with these filters, starting at page_token ("" for the first page)."""
        return self._client.list_numbers(page_size=page_size, page_token=page_token, **filters,
                                         **self._kw()).first_page

    # --- scoring ----------------------------------------------------------------------------------------------

    def health(self, phone: str) -> sco.NumberHealth:
        return self._client.get_health(phone, **self._kw())

    def health_of(self, phones: Sequence[str]) -> dict[str, sco.NumberHealth]:
        """The health scoring has for phones (one batch get per batch_get_size numbers)."""
        return self._found(phones, lambda batch: self._client.batch_get_health(batch, **self._kw()).health)

    def status_counts(self) -> sco.StatusCounts:
        return self._client.list_health(page_size=1, **self._kw()).first_response.counts

    def health_page(self, filters: Mapping[str, Any], page_size: int,
                    page_token: str) -> Page[sco.NumberHealth, sco.ListHealthResponse]:
        """One page of list_health with these filters; its response carries the counts per status."""
        return self._client.list_health(page_size=page_size, page_token=page_token, **filters,
                                        **self._kw()).first_page

    def all_health(self, statuses: Sequence[int]) -> list[sco.NumberHealth]:
        return self._client.list_health(statuses=list(statuses), page_size=1000, **self._kw()).to_list()

    def health_history(self, phone: str, limit: int) -> list[sco.HealthTransition]:
        return self._client.health_history(phone, page_size=limit, limit=limit, **self._kw()).to_list()

    def weekly_report(self) -> sco.WeeklyReport:
        return self._client.weekly_report(**self._kw())

    def call_activity(self, phone: str, days: int) -> sco.GetCallActivityResponse:
        return self._client.call_activity(phone, days=days, **self._kw())

    # --- allocation -------------------------------------------------------------------------------------------

    def usage(self, phone: str) -> alloc.NumberUsage:
        return self._client.get_number_usage(phone, **self._kw())

    def usage_of(self, phones: Sequence[str]) -> dict[str, alloc.NumberUsage]:
        """Today's usage of the numbers allocation knows among phones (one batch get per batch_get_size numbers)."""
        return self._found(phones, lambda batch: self._client.batch_get_number_usage(batch, **self._kw()).usage)

    def campaign_calls_today(self, campaign_id: str) -> int:
        """Calls allocated today for a campaign (the totals of its usage listing's first page only)."""
        return int(self._client.get_campaign_usage(campaign_id, page_size=1, limit=1, **self._kw()).calls_today)

    def capacity_plan(self, campaign_id: str) -> alloc.CapacityPlan:
        return self._client.get_capacity_plan(campaign_id, **self._kw())

    # --- remediation ------------------------------------------------------------------------------------------

    def cases(self, *, states: Sequence[int] = (), phone: str = "", limit: int | None = None) -> list[rem.Case]:
        return self._client.list_cases(states=list(states) or None, phone_number=phone, page_size=200,
                                       limit=limit, **self._kw()).to_list()

    def case(self, case_id: str) -> rem.Case:
        return self._client.get_case(case_id, **self._kw())

    def overdue_tasks(self, limit: int | None = None) -> list[rem.Task]:
        return self._client.list_tasks(overdue=True, page_size=200, limit=limit, **self._kw()).to_list()

    def open_case(self, phone: str, reason: str) -> rem.OpenCaseResponse:
        return self._client.open_case(phone, kind="REMEDIATION", reason=reason, **self._kw())

    def complete_task(self, case_id: str, task_id: str, reference: str, outcome: int | None,
                      notes: str | None) -> rem.UpdateTaskResponse:
        return self._client.update_task(case_id, task_id, status="DONE", reference=reference, outcome=outcome,
                                        notes=notes, **self._kw())

    def evidence(self, case_id: str, fmt: str) -> rem.GetEvidencePacketResponse:
        return self._client.evidence_packet(case_id, format=fmt, **self._kw())
