"""Allocation test support: a real allocation server fed by fake registry and scoring feeds.

The fake upstream serves RegistryService.WatchChanges and ScoringService.WatchHealth from logs the test
appends to, with the snapshot/heartbeat protocol of the real feeds, so the allocation service's own
followers, cursors and replica are what the tests exercise. Tests that need the real registry and scoring
start them instead (test_end_to_end.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_status import rpc_status

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_platform.phone import parse_phone_number
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, auth

CREATED, UPDATED, DELETED = types_pb2.CHANGE_KIND_CREATED, types_pb2.CHANGE_KIND_UPDATED, types_pb2.CHANGE_KIND_DELETED


class FeedLog:
    """An upstream's change log: append() gives the next revision; watch() follows the feed protocol."""

    def __init__(self, response_type: Any) -> None:
        self._type = response_type
        self._items: list[Any] = []
        self._changed = threading.Condition()
        # Entries up to this revision were pruned; what a snapshot lists instead of replaying the log.
        self._compacted = 0
        self._state: list[Any] | None = None
        # (after_revision, snapshot) of every Watch call received.
        self.requests: list[tuple[int, bool]] = []

    def compact(self, state: list[Any]) -> None:
        """Prune the log: resuming from before its head now fails; a snapshot lists `state` (revision 0)."""
        with self._changed:
            self._compacted = len(self._items)
            self._state = state

    @property
    def head(self) -> int:
        with self._changed:
            return len(self._items)

    def append(self, message: Any) -> int:
        with self._changed:
            message.revision = len(self._items) + 1
            self._items.append(message)
            self._changed.notify_all()
            return message.revision

    def watch(self, after: int, snapshot: bool, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append((after, snapshot))
        with self._changed:
            items = list(self._items)
            state = list(self._items if self._state is None else self._state)
            compacted = self._compacted
        if not snapshot and after < compacted:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"revision {after} is older than the retention")
        if snapshot:
            for item in state:
                copy = self._type()
                copy.CopyFrom(item)
                copy.revision = 0
                yield copy
            cursor = len(items)
            yield self._type(revision=cursor, heartbeat=True)
        else:
            cursor = after
        while context.is_active():
            with self._changed:
                if len(self._items) <= cursor:
                    self._changed.wait(0.2)
                pending = self._items[cursor:]
            for item in pending:
                yield item
            cursor += len(pending)
            if not pending:
                yield self._type(revision=cursor, heartbeat=True)


class _Registry(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, log: FeedLog) -> None:
        self.log = log

    def WatchChanges(self, request, context):
        yield from self.log.watch(request.after_revision, request.snapshot, context)


class _Scoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, log: FeedLog) -> None:
        self.log = log

    def WatchHealth(self, request, context):
        yield from self.log.watch(request.after_revision, request.snapshot, context)


class FakeUpstream:
    """Fake registry + scoring on one port; stop() and start() again on the same port simulate an outage."""

    def __init__(self) -> None:
        self.registry = FeedLog(registry_pb2.WatchChangesResponse)
        self.scoring = FeedLog(scoring_pb2.WatchHealthResponse)
        self.port = 0
        self._server: grpc.Server | None = None

    def start(self) -> FakeUpstream:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        registry_pb2_grpc.add_RegistryServiceServicer_to_server(_Registry(self.registry), server)
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server(_Scoring(self.scoring), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(0).wait()
            self._server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- what the registry and scoring would publish -------------------------------------------------------

    def number(self, phone: str, *, campaigns: tuple[str, ...] = ("c1",), state: int = types_pb2.LIFECYCLE_STATE_ACTIVE,
               display_name: str = "Acme Sales", tenant: str = TENANT_A, kind: int = UPDATED,
               warmup_caps: tuple[int, ...] = (), warmup_step: timedelta | None = None,
               warmup_start=None) -> int:
        parsed = parse_phone_number(phone)
        number = registry_pb2.Number(
            phone_number=parsed.e164, tenant_id=tenant, country=parsed.country, area_code=parsed.area_code,
            exchange=parsed.exchange, region=parsed.region, time_zone=parsed.time_zone, display_name=display_name,
            state=state, campaign_ids=list(campaigns))
        if state == types_pb2.LIFECYCLE_STATE_WARMING:
            plan = registry_pb2.WarmupPlan(daily_caps=list(warmup_caps))
            if warmup_step is not None:
                plan.step_duration.CopyFrom(Duration(seconds=int(warmup_step.total_seconds())))
            number.warmup_plan.CopyFrom(plan)
            if warmup_start is not None:
                number.warmup_start_time.FromDatetime(warmup_start)
        revision = self.registry.append(registry_pb2.WatchChangesResponse(kind=kind, tenant_id=tenant, number=number))
        for campaign_id in campaigns:  # the registry publishes each membership as an Assignment
            assignment = registry_pb2.Assignment(tenant_id=tenant, campaign_id=campaign_id, phone_number=parsed.e164)
            revision = self.registry.append(
                registry_pb2.WatchChangesResponse(kind=CREATED, tenant_id=tenant, assignment=assignment))
        return revision

    def campaign(self, campaign_id: str = "c1", *, tenant: str = TENANT_A, kind: int = UPDATED, **policy: Any) -> int:
        window = {k: policy.pop(k) for k in ("calling_window_start", "calling_window_end") if k in policy}
        tiers = policy.pop("tiers", None)
        ttl = policy.pop("sticky_ttl", None)
        message = registry_pb2.CallingPolicy(**policy)
        for name, (hours, minutes) in window.items():
            getattr(message, name).CopyFrom(types_pb2.TimeOfDay(hours=hours, minutes=minutes))
        if tiers is not None:
            message.local_presence.tiers.extend(tiers)
        if ttl is not None:
            message.sticky_ttl.CopyFrom(Duration(seconds=int(ttl.total_seconds())))
        campaign = registry_pb2.Campaign(id=campaign_id, tenant_id=tenant, name=f"campaign {campaign_id}",
                                         policy=message)
        return self.registry.append(registry_pb2.WatchChangesResponse(kind=kind, tenant_id=tenant, campaign=campaign))

    def unassign(self, phone: str, campaign_id: str = "c1", tenant: str = TENANT_A) -> int:
        return self.registry.append(registry_pb2.WatchChangesResponse(
            kind=DELETED, tenant_id=tenant,
            assignment=registry_pb2.Assignment(tenant_id=tenant, campaign_id=campaign_id, phone_number=phone)))

    def health(self, phone: str, status: int, *, carriers: dict[str, int] | None = None,
               sources: tuple[tuple[int, int], ...] = (), tenant: str = TENANT_A) -> int:
        health = scoring_pb2.NumberHealth(
            phone_number=phone, tenant_id=tenant, status=status, carrier_status=carriers or {},
            sources=[scoring_pb2.SourceHealth(source=s, status=st) for s, st in sources])
        return self.scoring.append(scoring_pb2.WatchHealthResponse(kind=UPDATED, health=health))


class Allocation:
    """The allocation service under test, with helpers."""

    def __init__(self, handle: Any, upstream: FakeUpstream) -> None:
        self.handle = handle
        self.upstream = upstream
        self.channel = handle.channel()
        self.stub = allocation_pb2_grpc.AllocationServiceStub(self.channel)

    def sync(self, timeout: float = 10.0) -> None:
        """Wait until the replica has applied everything both fake upstreams published."""
        wanted = {"registry": self.upstream.registry.head, "scoring": self.upstream.scoring.head}
        deadline = time.monotonic() + timeout
        while True:
            feeds = {f.upstream: f.revision for f in self.stub.GetReplicationStatus(
                allocation_pb2.GetReplicationStatusRequest(), metadata=auth(TENANT_A_KEY)).feeds}
            if all(feeds.get(name, 0) >= head for name, head in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"replica did not catch up: {feeds} < {wanted}")
            time.sleep(0.02)

    def allocate(self, destination: str, call_id: str, *, campaign: str = "c1", carrier: int = 0,
                 key: str = TENANT_A_KEY) -> allocation_pb2.AllocateNumberResponse:
        return self.stub.AllocateNumber(allocation_pb2.AllocateNumberRequest(
            campaign_id=campaign, destination=destination, call_id=call_id, destination_carrier=carrier),
            metadata=auth(key), timeout=10)

    def refuse(self, destination: str, call_id: str, **kwargs: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            self.allocate(destination, call_id, **kwargs)
        return caught.value

    def usage(self, phone: str, campaign: str = "") -> allocation_pb2.NumberUsage:
        return self.stub.GetNumberUsage(allocation_pb2.GetNumberUsageRequest(phone_number=phone, campaign_id=campaign),
                                        metadata=auth(TENANT_A_KEY)).usage


def detail(error: grpc.RpcError, message_type: Any) -> Any:
    """The first typed detail of `message_type` in an error's google.rpc.Status."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status in {error}"
    for item in status.details:
        if item.Is(message_type.DESCRIPTOR):
            value = message_type()
            item.Unpack(value)
            return value
    raise AssertionError(f"no {message_type.DESCRIPTOR.name} in {error}")
