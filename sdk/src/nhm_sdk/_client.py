"""The synchronous client: one object for every nhm service, owning and reusing its channels."""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from nhm.allocation.v1 import allocation_pb2 as alloc
from nhm.allocation.v1 import allocation_pb2_grpc as alloc_grpc
from nhm.audit.v1 import audit_pb2 as audit
from nhm.audit.v1 import audit_pb2_grpc as audit_grpc
from nhm.registry.v1 import registry_pb2 as reg
from nhm.registry.v1 import registry_pb2_grpc as reg_grpc
from nhm.remediation.v1 import remediation_pb2 as rem
from nhm.remediation.v1 import remediation_pb2_grpc as rem_grpc
from nhm.scoring.v1 import scoring_pb2 as sco
from nhm.scoring.v1 import scoring_pb2_grpc as sco_grpc
from nhm_sdk import _requests as rq
from nhm_sdk._channels import base_metadata, merge_metadata, open_channel
from nhm_sdk._config import AUDITED_SERVICES, ClientConfig
from nhm_sdk._convert import TimestampLike
from nhm_sdk._dialer import Call, OutcomeReporter, allocate_with_fallback
from nhm_sdk._errors import CancelledError, from_rpc_error
from nhm_sdk._pagination import Page, PageIterator, merge_pages, merge_sorted
from nhm_sdk._requests import (
    BusinessProfileLike,
    CallingPolicyLike,
    CallOutcomeLike,
    ComplaintLike,
    EnumLike,
    NumberSpecLike,
    ObservationLike,
    RemediationPolicyLike,
    ScoringPolicyLike,
    WarmupPlanLike,
)

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
T = TypeVar("T")

Metadata = Sequence[tuple[str, str]]
Timeout = float | dt.timedelta | None


class Stream(Generic[T]):
    """A server stream (Watch…): iterate it for changes; ``cancel()`` or leave the ``with`` block to stop.

    Errors arrive as :class:`~nhm_sdk.NhmError` subclasses; a stream cancelled by the caller just ends.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._cancelled = False

    def __iter__(self) -> Iterator[T]:
        try:
            yield from self._call
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, CancelledError) and self._cancelled:
                return
            raise error from None

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.cancel()


class Client:
    """nhm's Python client. ``Client()`` reads NHM_TARGET / NHM_API_KEY (see :meth:`ClientConfig.from_env`);
    ``Client("nhm.internal:443", api_key=..., tls=TlsConfig())`` or ``Client(ClientConfig(...))`` configure it
    directly. Use it as a context manager, or call :meth:`close`, to release its channels.

    Every method takes ``timeout=`` (seconds or timedelta; defaults per service in :class:`Timeouts`) and
    ``metadata=`` (extra pairs for this call), returns the generated messages, and raises
    :class:`~nhm_sdk.NhmError` subclasses. List methods return a :class:`PageIterator` and take ``page_size=``,
    ``page_token=`` (start at an earlier page's ``next_page_token``) and ``limit=``.
    """

    def __init__(self, config: ClientConfig | str | None = None, **overrides: Any) -> None:
        if config is None:
            config = ClientConfig.from_env(**overrides)
        elif isinstance(config, str):
            config = ClientConfig(target=config, **overrides)
        elif overrides:
            config = config.with_overrides(**overrides)
        self.config = config
        self._metadata = base_metadata(config)
        self._channels: dict[str, grpc.Channel] = {}
        self._audit_stubs: dict[str, audit_grpc.AuditServiceStub] = {}
        self._lock = threading.Lock()
        self._reporter_lock = threading.Lock()
        self._reporter: OutcomeReporter | None = None
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------------------------

    # Stubs are made on first use, so a client configured for one service never needs the others' targets.
    @functools.cached_property
    def _registry(self) -> reg_grpc.RegistryServiceStub:
        return reg_grpc.RegistryServiceStub(self._channel("registry"))

    @functools.cached_property
    def _scoring(self) -> sco_grpc.ScoringServiceStub:
        return sco_grpc.ScoringServiceStub(self._channel("scoring"))

    @functools.cached_property
    def _allocation(self) -> alloc_grpc.AllocationServiceStub:
        return alloc_grpc.AllocationServiceStub(self._channel("allocation"))

    @functools.cached_property
    def _remediation(self) -> rem_grpc.RemediationServiceStub:
        return rem_grpc.RemediationServiceStub(self._channel("remediation"))

    def _audit(self, service: str) -> audit_grpc.AuditServiceStub:
        """The audit stub on a service's channel (every audited service serves nhm.audit.v1 on its own port)."""
        stub = self._audit_stubs.get(service)
        if stub is None:
            stub = self._audit_stubs.setdefault(service, audit_grpc.AuditServiceStub(self._channel(service)))
        return stub


    def _channel(self, service: str) -> grpc.Channel:
        target = self.config.target_for(service)
        with self._lock:
            if self._closed:
                raise RuntimeError("this client is closed")
            channel = self._channels.get(target)
            if channel is None:
                channel = open_channel(self.config, target)
                self._channels[target] = channel
            return channel

    def channel(self, service: str) -> grpc.Channel:
        """The channel used for a service (shared by services with the same target), for custom stubs."""
        return self._channel(service)

    @property
    def outcomes(self) -> OutcomeReporter:
        """The client's background outcome reporter (started on first use, flushed by :meth:`close`)."""
        with self._reporter_lock:
            if self._reporter is None:
                self._reporter = OutcomeReporter(self)
            return self._reporter

    def outcome_reporter(self, **options: Any) -> OutcomeReporter:
        """A separate :class:`OutcomeReporter` with its own options (batch_size, flush_interval, max_queue)."""
        return OutcomeReporter(self, **options)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush queued outcomes (for up to ``timeout`` seconds), then close every channel."""
        if self._closed:
            return
        if self._reporter is not None:
            self._reporter.close(timeout)
        with self._lock:
            self._closed = True
            for channel in self._channels.values():
                channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- invocation -----------------------------------------------------------------------------------------

    def _timeout(self, service: str, timeout: Timeout) -> float | None:
        if timeout is None:
            return self.config.timeouts.for_service(service)
        if isinstance(timeout, dt.timedelta):
            return timeout.total_seconds()
        return float(timeout)

    def _unary(self, service: str, rpc: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req, timeout: Timeout,
               metadata: Metadata | None, request_id: str = "") -> Resp:
        try:
            return rpc(request, timeout=self._timeout(service, timeout),
                       metadata=merge_metadata(self._metadata, metadata, request_id))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def _pages(self, service: str, rpc: grpc.UnaryUnaryMultiCallable[Req, Resp], build: Callable[[str], Req],
               items: str, timeout: Timeout, metadata: Metadata | None, page_token: str,
               limit: int | None) -> PageIterator[Any, Resp]:
        def fetch(token: str) -> Page[Any, Resp]:
            response = self._unary(service, rpc, build(token), timeout, metadata)
            return Page(getattr(response, items), getattr(response, "next_page_token", ""), response)
        return PageIterator(fetch, page_token=page_token, limit=limit)

    def _stream(self, rpc: grpc.UnaryStreamMultiCallable[Req, Resp], request: Req, timeout: Timeout,
                metadata: Metadata | None) -> Stream[Resp]:
        seconds = self.config.timeouts.stream if timeout is None else self._timeout("registry", timeout)
        call = rpc(request, timeout=seconds, metadata=merge_metadata(self._metadata, metadata, None))
        return Stream(call)

    # --- allocation: the hot path ---------------------------------------------------------------------------

    def allocate_number(self, campaign_id: str, destination: str, *, call_id: str | None = None,
                        destination_carrier: EnumLike | None = None, timeout: Timeout = None,
                        metadata: Metadata | None = None) -> alloc.AllocateNumberResponse:
        """A caller ID for one outbound call to ``destination`` (E.164). ``call_id`` defaults to a new uuid4;
        a retry with the same call_id returns the same answer and counts once.

        Raises NothingEligibleError (with ``.refusal``) or CallingRestrictedError (with ``.restriction``).
        """
        request = rq.allocate_number(campaign_id, destination, call_id, destination_carrier)
        return self._unary("allocation", self._allocation.AllocateNumber, request, timeout, metadata,
                           request.call_id)

    def release_allocation(self, call_id: str, *, request_id: str | None = None, timeout: Timeout = None,
                           metadata: Metadata | None = None) -> alloc.ReleaseAllocationResponse:
        """Give back the caller ID of a call that was never placed; refunds its caps once. A retry (same
        ``request_id``, a uuid4 when not given) gets the first answer."""
        request = rq.release_allocation(call_id, request_id)
        return self._unary("allocation", self._allocation.ReleaseAllocation, request, timeout, metadata,
                           request.request_id)

    def get_number_usage(self, phone_number: str, *, campaign_id: str = "", timeout: Timeout = None,
                         metadata: Metadata | None = None) -> alloc.NumberUsage:
        request = alloc.GetNumberUsageRequest(phone_number=phone_number, campaign_id=campaign_id)
        return self._unary("allocation", self._allocation.GetNumberUsage, request, timeout, metadata).usage

    def batch_get_number_usage(self, phone_numbers: Iterable[str], *, campaign_id: str = "", timeout: Timeout = None,
                               metadata: Metadata | None = None) -> alloc.BatchGetNumberUsageResponse:
        """Today's usage of up to 1,000 numbers in one call: ``.usage`` in the order asked, and
        ``.not_found_phone_numbers`` for the numbers allocation knows nothing of."""
        request = alloc.BatchGetNumberUsageRequest(phone_numbers=list(phone_numbers), campaign_id=campaign_id)
        return self._unary("allocation", self._allocation.BatchGetNumberUsage, request, timeout, metadata)

    def get_campaign_usage(self, campaign_id: str, *, page_size: int = 0, limit: int | None = None,
                           timeout: Timeout = None, metadata: Metadata | None = None) -> alloc.GetCampaignUsageResponse:
        """Today's usage of a campaign: its totals and its numbers, every page merged into one response (or the
        first ``limit`` numbers: ``page_size=1, limit=1`` reads just the totals, in one call)."""
        request = alloc.GetCampaignUsageRequest(campaign_id=campaign_id, page_size=page_size)
        pages = self._pages("allocation", self._allocation.GetCampaignUsage, _with_token(request), "numbers",
                            timeout, metadata, "", limit)
        return merge_pages(list(pages.pages()), "numbers", limit)

    def get_capacity_plan(self, campaign_id: str, *, expected_daily_calls: int = 0,
                          resting_buffer: float | None = None, timeout: Timeout = None,
                          metadata: Metadata | None = None) -> alloc.CapacityPlan:
        request = rq.capacity_plan(campaign_id, expected_daily_calls, resting_buffer)
        return self._unary("allocation", self._allocation.GetCapacityPlan, request, timeout, metadata).plan

    def get_replication_status(self, *, timeout: Timeout = None,
                               metadata: Metadata | None = None) -> list[alloc.FeedStatus]:
        response = self._unary("allocation", self._allocation.GetReplicationStatus,
                               alloc.GetReplicationStatusRequest(), timeout, metadata)
        return list(response.feeds)

    def call(self, campaign_id: str, destination: str, *, fallback_caller_id: str | None = None,
             destination_carrier: EnumLike | None = None, call_id: str | None = None, timeout: Timeout = None,
             reporter: OutcomeReporter | None = None) -> Call:
        """The per-call flow as a context manager::

            with client.call(campaign_id, "+12127363100") as call:
                dial(call.caller_id)
                call.report(answered=True, talk_duration=42, sip_code=200)

        Leaving the block without reporting (or ``call.placed()``) releases the allocation. With
        ``fallback_caller_id``, that number is used only when allocation cannot be reached in time
        (UNAVAILABLE, DEADLINE_EXCEEDED) — never when it answers that nothing is eligible.
        Outcomes go to the client's background reporter unless ``reporter`` is given.
        """
        response, fallback = allocate_with_fallback(
            lambda: self.allocate_number(campaign_id, destination, call_id=call_id,
                                         destination_carrier=destination_carrier, timeout=timeout),
            fallback_caller_id)
        return Call(self, campaign_id, destination, response, fallback, fallback_caller_id,
                    reporter or self.outcomes)

    # --- registry: numbers ----------------------------------------------------------------------------------

    def create_number(self, phone_number: NumberSpecLike, *, display_name: str | None = None,
                      provider: str | None = None, attestation: EnumLike | None = None,
                      inbound_enabled: bool | None = None, labels: Mapping[str, str] | None = None,
                      campaign_ids: Sequence[str] | None = None, start_warming: bool | None = None,
                      warmup_plan: WarmupPlanLike | None = None, registrations: Sequence[Any] | None = None,
                      request_id: str | None = None, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> reg.Number:
        """Register one outbound number (E.164, validated and normalised by the server)."""
        request = rq.create_number(
            phone_number, request_id, display_name=display_name, provider=provider, attestation=attestation,
            inbound_enabled=inbound_enabled, labels=labels, campaign_ids=campaign_ids, start_warming=start_warming,
            warmup_plan=warmup_plan, registrations=registrations)
        return self._unary("registry", self._registry.CreateNumber, request, timeout, metadata,
                           request.request_id).number

    def import_numbers(self, numbers: Iterable[NumberSpecLike], *, campaign_ids: Sequence[str] | None = None,
                       request_id: str | None = None, timeout: Timeout = None,
                       metadata: Metadata | None = None) -> list[reg.Number]:
        """Create many numbers at once, all or nothing (BatchCreateNumbers). On bad rows the
        InvalidArgumentError's ``field_violations`` name each one (``numbers[i].phone_number``)."""
        request = rq.batch_create_numbers(numbers, request_id, campaign_ids)
        response = self._unary("registry", self._registry.BatchCreateNumbers, request, timeout, metadata,
                               request.request_id)
        return list(response.numbers)

    def get_number(self, phone_number: str, *, timeout: Timeout = None,
                   metadata: Metadata | None = None) -> reg.Number:
        return self._unary("registry", self._registry.GetNumber, reg.GetNumberRequest(phone_number=phone_number),
                           timeout, metadata).number

    def batch_get_numbers(self, phone_numbers: Iterable[str], *, timeout: Timeout = None,
                          metadata: Metadata | None = None) -> reg.BatchGetNumbersResponse:
        """Up to 1,000 numbers in one call: ``.numbers`` in the order asked, and ``.not_found_phone_numbers``
        for the numbers that are not the tenant's."""
        request = reg.BatchGetNumbersRequest(phone_numbers=list(phone_numbers))
        return self._unary("registry", self._registry.BatchGetNumbers, request, timeout, metadata)

    def list_numbers(self, *, states: Iterable[EnumLike] | EnumLike | None = None, campaign_id: str = "",
                     area_code: str = "", region: str = "",
                     attestations: Iterable[EnumLike] | EnumLike | None = None,
                     labels: Mapping[str, str] | None = None, order_by: EnumLike | None = None,
                     descending: bool = False, phone_number_prefix: str = "", page_size: int = 0,
                     page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                     metadata: Metadata | None = None) -> PageIterator[reg.Number, reg.ListNumbersResponse]:
        """Every number matching the filters, fetched page by page as you iterate."""
        request = rq.list_numbers(page_size=page_size, states=states, campaign_id=campaign_id, area_code=area_code,
                                  region=region, attestations=attestations, labels=labels, order_by=order_by,
                                  descending=descending, phone_number_prefix=phone_number_prefix)
        return self._pages("registry", self._registry.ListNumbers, _with_token(request), "numbers", timeout,
                           metadata, page_token, limit)

    def update_number(self, phone_number: str, *, display_name: str | None = None, provider: str | None = None,
                      attestation: EnumLike | None = None, registrations: Sequence[Any] | None = None,
                      inbound_enabled: bool | None = None, inbound_required_until: TimestampLike | None = None,
                      labels: Mapping[str, str] | None = None, warmup_plan: WarmupPlanLike | None = None,
                      etag: str | None = None, request_id: str | None = None, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> reg.Number:
        """Change the fields given (the update mask is built from them). With ``etag``, only if unchanged since."""
        changes = {"display_name": display_name, "provider": provider, "attestation": attestation,
                   "registrations": registrations, "inbound_enabled": inbound_enabled,
                   "inbound_required_until": inbound_required_until, "labels": labels, "warmup_plan": warmup_plan}
        request = rq.update_number(phone_number, changes, etag, request_id)
        return self._unary("registry", self._registry.UpdateNumber, request, timeout, metadata,
                           request.request_id).number

    def retire_number(self, phone_number: str, *, reason: str = "", etag: str | None = None,
                      request_id: str | None = None, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> reg.Number:
        request = reg.RetireNumberRequest(phone_number=phone_number, reason=reason, etag=etag or "",
                                          request_id=request_id or rq.new_id())
        return self._unary("registry", self._registry.RetireNumber, request, timeout, metadata,
                           request.request_id).number

    def transition_number(self, phone_number: str, target_state: EnumLike, *, reason: str = "",
                          rest_until: TimestampLike | None = None, warmup_plan: WarmupPlanLike | None = None,
                          etag: str | None = None, request_id: str | None = None, timeout: Timeout = None,
                          metadata: Metadata | None = None) -> reg.TransitionNumberResponse:
        """Move a number to another lifecycle state (``"QUARANTINED"``, ``"RESTING"`` with ``rest_until``, …)."""
        request = rq.transition_number(phone_number, target_state, reason=reason, rest_until=rest_until,
                                       warmup_plan=warmup_plan, etag=etag, request_id=request_id)
        return self._unary("registry", self._registry.TransitionNumber, request, timeout, metadata,
                           request.request_id)

    def list_number_transitions(self, phone_number: str, *, page_size: int = 0,
                                page_token: str = "", limit: int | None = None,
                                timeout: Timeout = None, metadata: Metadata | None = None
                                ) -> PageIterator[reg.NumberTransition, reg.ListNumberTransitionsResponse]:
        """A number's lifecycle history, newest first."""
        request = reg.ListNumberTransitionsRequest(phone_number=phone_number, page_size=page_size)
        return self._pages("registry", self._registry.ListNumberTransitions, _with_token(request), "transitions",
                           timeout, metadata, page_token, limit)

    # --- registry: campaigns --------------------------------------------------------------------------------

    def create_campaign(self, name: str, *, description: str = "", policy: CallingPolicyLike | None = None,
                        request_id: str | None = None, timeout: Timeout = None,
                        metadata: Metadata | None = None) -> reg.Campaign:
        """A campaign (a pool of numbers with a calling policy; unset policy fields take the defaults)."""
        request = rq.create_campaign(name, description, policy, request_id)
        return self._unary("registry", self._registry.CreateCampaign, request, timeout, metadata,
                           request.request_id).campaign

    def get_campaign(self, campaign_id: str, *, timeout: Timeout = None,
                     metadata: Metadata | None = None) -> reg.Campaign:
        return self._unary("registry", self._registry.GetCampaign, reg.GetCampaignRequest(campaign_id=campaign_id),
                           timeout, metadata).campaign

    def list_campaigns(self, *, page_size: int = 0,
                       page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                       metadata: Metadata | None = None) -> PageIterator[reg.Campaign, reg.ListCampaignsResponse]:
        return self._pages("registry", self._registry.ListCampaigns,
                           _with_token(reg.ListCampaignsRequest(page_size=page_size)), "campaigns", timeout,
                           metadata, page_token, limit)

    def update_campaign(self, campaign_id: str, *, name: str | None = None, description: str | None = None,
                        policy: CallingPolicyLike | None = None, etag: str | None = None,
                        request_id: str | None = None, timeout: Timeout = None,
                        metadata: Metadata | None = None) -> reg.Campaign:
        """Change a campaign. ``policy`` as a mapping changes only the policy fields it names; as a
        CallingPolicy message it replaces the whole policy."""
        request = rq.update_campaign(campaign_id, name=name, description=description, policy=policy, etag=etag,
                                     request_id=request_id)
        return self._unary("registry", self._registry.UpdateCampaign, request, timeout, metadata,
                           request.request_id).campaign

    def delete_campaign(self, campaign_id: str, *, etag: str | None = None, request_id: str | None = None,
                        timeout: Timeout = None, metadata: Metadata | None = None) -> None:
        request = reg.DeleteCampaignRequest(campaign_id=campaign_id, etag=etag or "",
                                            request_id=request_id or rq.new_id())
        self._unary("registry", self._registry.DeleteCampaign, request, timeout, metadata, request.request_id)

    def assign_numbers(self, campaign_id: str, phone_numbers: Iterable[str], *, request_id: str | None = None,
                       timeout: Timeout = None, metadata: Metadata | None = None) -> reg.Campaign:
        request = reg.AssignNumbersRequest(campaign_id=campaign_id, phone_numbers=list(phone_numbers),
                                           request_id=request_id or rq.new_id())
        return self._unary("registry", self._registry.AssignNumbers, request, timeout, metadata,
                           request.request_id).campaign

    def unassign_numbers(self, campaign_id: str, phone_numbers: Iterable[str], *, request_id: str | None = None,
                         timeout: Timeout = None, metadata: Metadata | None = None) -> reg.Campaign:
        request = reg.UnassignNumbersRequest(campaign_id=campaign_id, phone_numbers=list(phone_numbers),
                                             request_id=request_id or rq.new_id())
        return self._unary("registry", self._registry.UnassignNumbers, request, timeout, metadata,
                           request.request_id).campaign

    # --- registry: tenants and keys -------------------------------------------------------------------------

    def create_tenant(self, tenant_id: str, *, display_name: str = "",
                      business_profile: BusinessProfileLike | None = None, request_id: str | None = None,
                      timeout: Timeout = None, metadata: Metadata | None = None) -> reg.Tenant:
        """Create a tenant (admin keys only)."""
        request = rq.create_tenant(tenant_id, display_name, business_profile, request_id)
        return self._unary("registry", self._registry.CreateTenant, request, timeout, metadata,
                           request.request_id).tenant

    def get_tenant(self, tenant_id: str = "", *, timeout: Timeout = None,
                   metadata: Metadata | None = None) -> reg.Tenant:
        """The caller's own tenant (or any tenant, for admin keys)."""
        return self._unary("registry", self._registry.GetTenant, reg.GetTenantRequest(tenant_id=tenant_id),
                           timeout, metadata).tenant

    def update_tenant(self, tenant_id: str = "", *, display_name: str | None = None,
                      business_profile: BusinessProfileLike | None = None, etag: str | None = None,
                      request_id: str | None = None, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> reg.Tenant:
        """Change the display name or business profile (a mapping changes only the profile fields it names)."""
        request = rq.update_tenant(tenant_id, display_name=display_name, business_profile=business_profile,
                                   etag=etag, request_id=request_id)
        return self._unary("registry", self._registry.UpdateTenant, request, timeout, metadata,
                           request.request_id).tenant

    def create_api_key(self, name: str, *, role: EnumLike = "TENANT", tenant_id: str = "",
                       request_id: str | None = None, timeout: Timeout = None,
                       metadata: Metadata | None = None) -> reg.CreateApiKeyResponse:
        """A new key (``role`` TENANT or READ_ONLY). ``response.secret`` is shown once; store it now."""
        request = rq.create_api_key(name, role, tenant_id, request_id)
        return self._unary("registry", self._registry.CreateApiKey, request, timeout, metadata, request.request_id)

    def list_api_keys(self, *, include_revoked: bool = False, page_size: int = 0,
                      page_token: str = "", limit: int | None = None,
                      timeout: Timeout = None,
                      metadata: Metadata | None = None) -> PageIterator[reg.ApiKey, reg.ListApiKeysResponse]:
        request = reg.ListApiKeysRequest(page_size=page_size, include_revoked=include_revoked)
        return self._pages("registry", self._registry.ListApiKeys, _with_token(request), "api_keys", timeout,
                           metadata, page_token, limit)

    def revoke_api_key(self, api_key_id: str, *, request_id: str | None = None, timeout: Timeout = None,
                       metadata: Metadata | None = None) -> reg.ApiKey:
        request = reg.RevokeApiKeyRequest(api_key_id=api_key_id, request_id=request_id or rq.new_id())
        return self._unary("registry", self._registry.RevokeApiKey, request, timeout, metadata,
                           request.request_id).api_key

    def watch_changes(self, *, after_revision: int = 0, tenant_id: str = "", snapshot: bool = False,
                      timeout: Timeout = None,
                      metadata: Metadata | None = None) -> Stream[reg.WatchChangesResponse]:
        """The registry's change feed: changes after ``after_revision``, then live ones (heartbeats when idle)."""
        request = reg.WatchChangesRequest(after_revision=after_revision, tenant_id=tenant_id, snapshot=snapshot)
        return self._stream(self._registry.WatchChanges, request, timeout, metadata)

    # --- scoring --------------------------------------------------------------------------------------------

    def report_call_outcomes(self, outcomes: Iterable[CallOutcomeLike], *, timeout: Timeout = None,
                             metadata: Metadata | None = None) -> sco.IngestSummary:
        """Report finished calls. Each gets an event id (uuid4) if it has none; a resent event counts once."""
        request = sco.ReportCallOutcomesRequest(outcomes=rq.call_outcomes(outcomes))
        return self._unary("scoring", self._scoring.ReportCallOutcomes, request, timeout, metadata).summary

    def stream_call_outcomes(self, batches: Iterable[Iterable[CallOutcomeLike]], *, timeout: Timeout = None,
                             metadata: Metadata | None = None) -> sco.IngestSummary:
        """Send batches of outcomes over one client stream; one summary at the end."""
        requests = (sco.StreamCallOutcomesRequest(outcomes=rq.call_outcomes(batch)) for batch in batches)
        try:
            response = self._scoring.StreamCallOutcomes(
                requests, timeout=self._timeout("scoring", timeout),
                metadata=merge_metadata(self._metadata, metadata, None))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return response.summary

    def report_complaints(self, complaints: Iterable[ComplaintLike], *, timeout: Timeout = None,
                          metadata: Metadata | None = None) -> sco.IngestSummary:
        """Report consumer complaints and do-not-call requests (``kind`` COMPLAINT by default)."""
        request = sco.ReportComplaintsRequest(complaints=rq.complaints(complaints))
        return self._unary("scoring", self._scoring.ReportComplaints, request, timeout, metadata).summary

    def report_reputation_observations(self, observations: Iterable[ObservationLike], *, timeout: Timeout = None,
                                       metadata: Metadata | None = None) -> sco.IngestSummary:
        """Report what carriers, engines and apps say about numbers (source, label, observe_time)."""
        request = sco.ReportReputationObservationsRequest(observations=rq.observations(observations))
        return self._unary("scoring", self._scoring.ReportReputationObservations, request, timeout,
                           metadata).summary

    def import_reputation_csv(self, csv: bytes | str | os.PathLike[str], *, timeout: Timeout = None,
                              metadata: Metadata | None = None) -> sco.IngestSummary:
        """Load a reputation vendor's CSV export: bytes or str content, or a path."""
        request = sco.ImportReputationCsvRequest(csv=_csv_bytes(csv))
        return self._unary("scoring", self._scoring.ImportReputationCsv, request, timeout, metadata).summary

    def get_health(self, phone_number: str, *, timeout: Timeout = None,
                   metadata: Metadata | None = None) -> sco.NumberHealth:
        """A number's health: status, score, each source's label, risk factors with advice, per-carrier view."""
        return self._unary("scoring", self._scoring.GetHealth, sco.GetHealthRequest(phone_number=phone_number),
                           timeout, metadata).health

    def batch_get_health(self, phone_numbers: Iterable[str], *, timeout: Timeout = None,
                         metadata: Metadata | None = None) -> sco.BatchGetHealthResponse:
        """The health of up to 1,000 numbers in one call: ``.health`` in the order asked, and
        ``.not_found_phone_numbers`` for the numbers scoring has no health for."""
        request = sco.BatchGetHealthRequest(phone_numbers=list(phone_numbers))
        return self._unary("scoring", self._scoring.BatchGetHealth, request, timeout, metadata)

    def list_health(self, *, statuses: Iterable[EnumLike] | EnumLike | None = None, source: EnumLike | None = None,
                    campaign_id: str = "", area_code: str = "", phone_number_prefix: str = "", page_size: int = 0,
                    page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                    metadata: Metadata | None = None) -> PageIterator[sco.NumberHealth, sco.ListHealthResponse]:
        """Numbers' health with filters. ``.first_response.counts`` has the counts per status for the filter."""
        request = rq.list_health(page_size=page_size, statuses=statuses, source=source, campaign_id=campaign_id,
                                 area_code=area_code, phone_number_prefix=phone_number_prefix)
        return self._pages("scoring", self._scoring.ListHealth, _with_token(request), "health", timeout, metadata,
                           page_token, limit)

    def health_history(self, phone_number: str, *, page_size: int = 0, page_token: str = "", limit: int | None = None,
                       timeout: Timeout = None, metadata: Metadata | None = None
                       ) -> PageIterator[sco.HealthTransition, sco.ListHealthHistoryResponse]:
        """Every status change of a number with its cause, newest first."""
        request = sco.ListHealthHistoryRequest(phone_number=phone_number, page_size=page_size)
        return self._pages("scoring", self._scoring.ListHealthHistory, _with_token(request), "transitions",
                           timeout, metadata, page_token, limit)

    def weekly_report(self, *, period_end: TimestampLike | None = None, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> sco.WeeklyReport:
        return self._unary("scoring", self._scoring.GetWeeklyReport, rq.weekly_report(period_end), timeout,
                           metadata).report

    def call_activity(self, phone_number: str, *, days: int = 0, sample_size: int = 0, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> sco.GetCallActivityResponse:
        """Calls per day over recent days (default 30) and recent call times: dispute evidence, usage charts."""
        request = sco.GetCallActivityRequest(phone_number=phone_number, days=days, sample_size=sample_size)
        return self._unary("scoring", self._scoring.GetCallActivity, request, timeout, metadata)

    def get_scoring_policy(self, *, timeout: Timeout = None, metadata: Metadata | None = None) -> sco.ScoringPolicy:
        return self._unary("scoring", self._scoring.GetScoringPolicy, sco.GetScoringPolicyRequest(), timeout,
                           metadata).policy

    def update_scoring_policy(self, policy: ScoringPolicyLike, *, update_mask: Iterable[str] | None = None,
                              request_id: str | None = None, timeout: Timeout = None,
                              metadata: Metadata | None = None) -> sco.UpdateScoringPolicyResponse:
        """Change scoring thresholds; a mapping changes the fields it names. Rescores the tenant's numbers."""
        request = rq.update_scoring_policy(policy, update_mask, request_id)
        return self._unary("scoring", self._scoring.UpdateScoringPolicy, request, timeout, metadata,
                           request.request_id)

    def watch_health(self, *, after_revision: int = 0, tenant_id: str = "", snapshot: bool = False,
                     timeout: Timeout = None, metadata: Metadata | None = None) -> Stream[sco.WatchHealthResponse]:
        request = sco.WatchHealthRequest(after_revision=after_revision, tenant_id=tenant_id, snapshot=snapshot)
        return self._stream(self._scoring.WatchHealth, request, timeout, metadata)

    # --- remediation ----------------------------------------------------------------------------------------

    def open_case(self, phone_number: str, *, kind: EnumLike = "REMEDIATION", reason: str = "",
                  request_id: str | None = None, timeout: Timeout = None,
                  metadata: Metadata | None = None) -> rem.OpenCaseResponse:
        """Open a remediation (or watch) case by hand; joins the number's open case if it has one."""
        request = rq.open_case(phone_number, kind, reason, request_id)
        return self._unary("remediation", self._remediation.OpenCase, request, timeout, metadata,
                           request.request_id)

    def get_case(self, case_id: str, *, timeout: Timeout = None, metadata: Metadata | None = None) -> rem.Case:
        return self._unary("remediation", self._remediation.GetCase, rem.GetCaseRequest(case_id=case_id), timeout,
                           metadata).case

    def list_cases(self, *, states: Iterable[EnumLike] | EnumLike | None = None,
                   stages: Iterable[EnumLike] | EnumLike | None = None, overdue: bool = False,
                   phone_number: str = "", campaign_id: str = "", page_size: int = 0,
                   page_token: str = "", limit: int | None = None,
                   timeout: Timeout = None,
                   metadata: Metadata | None = None) -> PageIterator[rem.Case, rem.ListCasesResponse]:
        request = rq.list_cases(page_size=page_size, states=states, stages=stages, overdue=overdue,
                                phone_number=phone_number, campaign_id=campaign_id)
        return self._pages("remediation", self._remediation.ListCases, _with_token(request), "cases", timeout,
                           metadata, page_token, limit)

    def list_tasks(self, *, kinds: Iterable[EnumLike] | EnumLike | None = None,
                   statuses: Iterable[EnumLike] | EnumLike | None = None, overdue: bool = False,
                   page_size: int = 0, page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                   metadata: Metadata | None = None) -> PageIterator[rem.Task, rem.ListTasksResponse]:
        """Tasks across cases, e.g. ``list_tasks(kinds="DISPUTE", overdue=True)``."""
        request = rq.list_tasks(page_size=page_size, kinds=kinds, statuses=statuses, overdue=overdue)
        return self._pages("remediation", self._remediation.ListTasks, _with_token(request), "tasks", timeout,
                           metadata, page_token, limit)

    def update_task(self, case_id: str, task_id: str, *, status: EnumLike | None = None, owner: str | None = None,
                    due_time: TimestampLike | None = None, reference: str | None = None,
                    notes: str | None = None, outcome: EnumLike | None = None, etag: str | None = None,
                    request_id: str | None = None, timeout: Timeout = None,
                    metadata: Metadata | None = None) -> rem.UpdateTaskResponse:
        """Record progress on a task, e.g. ``update_task(case, task, status="DONE", outcome="CLEARED")``."""
        changes = {"status": status, "owner": owner, "due_time": due_time, "reference": reference,
                   "notes": notes, "outcome": outcome}
        request = rq.update_task(case_id, task_id, changes, etag, request_id)
        return self._unary("remediation", self._remediation.UpdateTask, request, timeout, metadata,
                           request.request_id)

    def add_case_note(self, case_id: str, note: str, *, request_id: str | None = None, timeout: Timeout = None,
                      metadata: Metadata | None = None) -> rem.Case:
        request = rem.AddCaseNoteRequest(case_id=case_id, note=note, request_id=request_id or rq.new_id())
        return self._unary("remediation", self._remediation.AddCaseNote, request, timeout, metadata,
                           request.request_id).case

    def cancel_case(self, case_id: str, *, reason: str = "", restore_number: bool = False,
                    request_id: str | None = None, timeout: Timeout = None,
                    metadata: Metadata | None = None) -> rem.Case:
        request = rem.CancelCaseRequest(case_id=case_id, reason=reason, restore_number=restore_number,
                                        request_id=request_id or rq.new_id())
        return self._unary("remediation", self._remediation.CancelCase, request, timeout, metadata,
                           request.request_id).case

    def case_events(self, case_id: str, *, page_size: int = 0,
                    page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                    metadata: Metadata | None = None) -> PageIterator[rem.CaseEvent, rem.ListCaseEventsResponse]:
        """A case's audit trail: every change with actor and time."""
        request = rem.ListCaseEventsRequest(case_id=case_id, page_size=page_size)
        return self._pages("remediation", self._remediation.ListCaseEvents, _with_token(request), "events",
                           timeout, metadata, page_token, limit)

    def evidence_packet(self, case_id: str, *, task_id: str = "", format: EnumLike = "JSON",
                        timeout: Timeout = None, metadata: Metadata | None = None) -> rem.GetEvidencePacketResponse:
        """The dispute evidence (``.packets``) and the same as a file (``.content``, ``.filename``)."""
        request = rq.evidence_packet(case_id, task_id, format)
        return self._unary("remediation", self._remediation.GetEvidencePacket, request, timeout, metadata)

    def create_alert_subscription(self, channel: EnumLike, target: str, *, kinds: Iterable[EnumLike] | None = None,
                                  campaign_ids: Iterable[str] | None = None, signing_secret: str = "",
                                  request_id: str | None = None, timeout: Timeout = None,
                                  metadata: Metadata | None = None) -> rem.CreateAlertSubscriptionResponse:
        """Subscribe a webhook (``channel="WEBHOOK"``) or e-mail address to alerts; the signing secret is
        returned once."""
        request = rq.create_alert_subscription(channel, target, kinds, campaign_ids, signing_secret, request_id)
        return self._unary("remediation", self._remediation.CreateAlertSubscription, request, timeout, metadata,
                           request.request_id)

    def list_alert_subscriptions(self, *, page_size: int = 0,
                                 page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                                 metadata: Metadata | None = None
                                 ) -> PageIterator[rem.AlertSubscription, rem.ListAlertSubscriptionsResponse]:
        request = rem.ListAlertSubscriptionsRequest(page_size=page_size)
        return self._pages("remediation", self._remediation.ListAlertSubscriptions, _with_token(request),
                           "subscriptions", timeout, metadata, page_token, limit)

    def delete_alert_subscription(self, subscription_id: str, *, timeout: Timeout = None,
                                  metadata: Metadata | None = None) -> None:
        self._unary("remediation", self._remediation.DeleteAlertSubscription,
                    rem.DeleteAlertSubscriptionRequest(subscription_id=subscription_id), timeout, metadata)

    def list_alert_deliveries(self, *, subscription_id: str = "", states: Iterable[EnumLike] | EnumLike | None = None,
                              page_size: int = 0,
                              page_token: str = "", limit: int | None = None, timeout: Timeout = None,
                              metadata: Metadata | None = None
                              ) -> PageIterator[rem.AlertDelivery, rem.ListAlertDeliveriesResponse]:
        request = rq.list_alert_deliveries(page_size=page_size, subscription_id=subscription_id, states=states)
        return self._pages("remediation", self._remediation.ListAlertDeliveries, _with_token(request),
                           "deliveries", timeout, metadata, page_token, limit)

    def get_remediation_policy(self, *, timeout: Timeout = None,
                               metadata: Metadata | None = None) -> rem.RemediationPolicy:
        return self._unary("remediation", self._remediation.GetRemediationPolicy,
                           rem.GetRemediationPolicyRequest(), timeout, metadata).policy

    def update_remediation_policy(self, policy: RemediationPolicyLike, *, update_mask: Iterable[str] | None = None,
                                  request_id: str | None = None, timeout: Timeout = None,
                                  metadata: Metadata | None = None) -> rem.RemediationPolicy:
        request = rq.update_remediation_policy(policy, update_mask, request_id)
        return self._unary("remediation", self._remediation.UpdateRemediationPolicy, request, timeout, metadata,
                           request.request_id).policy

    def watch_cases(self, *, after_revision: int = 0, tenant_id: str = "", snapshot: bool = False,
                    timeout: Timeout = None, metadata: Metadata | None = None) -> Stream[rem.WatchCasesResponse]:
        request = rem.WatchCasesRequest(after_revision=after_revision, tenant_id=tenant_id, snapshot=snapshot)
        return self._stream(self._remediation.WatchCases, request, timeout, metadata)


    # --- audit (registry, scoring, remediation) -------------------------------------------------------------

    def list_audit_events(self, service: str, *, resource_types: Iterable[str] | str | None = None,
                          resource_name: str = "", actor: str = "", actions: Iterable[str] | str | None = None,
                          start_time: TimestampLike | None = None, end_time: TimestampLike | None = None,
                          oldest_first: bool = False, page_size: int = 0, page_token: str = "",
                          limit: int | None = None, timeout: Timeout = None, metadata: Metadata | None = None
                          ) -> PageIterator[audit.AuditEvent, audit.ListAuditEventsResponse]:
        """Who changed what and when, as one service recorded it (``"registry"``: numbers, campaigns, tenants,
        API keys; ``"scoring"``: the scoring policy; ``"remediation"``: cases and tasks, the remediation policy,
        alert subscriptions), newest first unless ``oldest_first``. ``resource_name`` (e.g. ``"cases/cas_…"``)
        includes the resources under it; ``actor`` is an actor's name or API key id."""
        request = rq.list_audit_events(page_size=page_size, resource_types=resource_types,
                                       resource_name=resource_name, actor=actor, actions=actions,
                                       start_time=start_time, end_time=end_time, oldest_first=oldest_first)
        service = rq.audited_service(service)
        return self._pages(service, self._audit(service).ListAuditEvents, _with_token(request), "events", timeout,
                           metadata, page_token, limit)

    def audit_trail(self, *, resource_types: Iterable[str] | str | None = None, resource_name: str = "",
                    actor: str = "", actions: Iterable[str] | str | None = None,
                    start_time: TimestampLike | None = None, end_time: TimestampLike | None = None,
                    oldest_first: bool = False, page_size: int = 0, timeout: Timeout = None,
                    metadata: Metadata | None = None) -> Iterator[audit.AuditEvent]:
        """Every audited service's events (filters as :meth:`list_audit_events`) merged into one listing by
        time, newest first unless ``oldest_first``; each service is read page by page as the merge needs it."""
        def listing(service: str) -> PageIterator[audit.AuditEvent, audit.ListAuditEventsResponse]:
            return self.list_audit_events(service, resource_types=resource_types, resource_name=resource_name,
                                          actor=actor, actions=actions, start_time=start_time, end_time=end_time,
                                          oldest_first=oldest_first, page_size=page_size, timeout=timeout,
                                          metadata=metadata)
        return merge_sorted([listing(service) for service in AUDITED_SERVICES], _event_time,
                            descending=not oldest_first)

def _event_time(event: audit.AuditEvent) -> tuple[int, int]:
    return event.event_time.seconds, event.event_time.nanos


def _with_token(request: Req) -> Callable[[str], Req]:
    """A function giving a copy of the request for one page token."""
    def build(token: str) -> Req:
        page = type(request)()
        page.CopyFrom(request)
        setattr(page, "page_token", token)  # noqa: B010 - every list request has this field
        return page
    return build


def _csv_bytes(csv: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(csv, bytes):
        return csv
    if isinstance(csv, str):
        return csv.encode()
    return Path(csv).read_bytes()
