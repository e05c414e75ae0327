"""The real registry and scoring killed (kill -9) while allocation serves calls, then restarted.

Allocation must keep serving from what it last knew (every call answered by its deadline, none refused: the
numbers are eligible), say how stale that is (the feed status, the answers, its health entry), and once the
upstream is back, resume its feed without a restart of its own.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from invariants import load
from sqlalchemy import create_engine, text

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_allocation.app import SPEC as ALLOCATION
from nhm_allocation.replication import HEALTH_ENTRY
from nhm_registry.app import SPEC as REGISTRY
from nhm_scoring.app import SPEC as SCORING
from nhm_testing.databases import owner_url
from nhm_testing.keys import TENANT_A_KEY, auth
from nhm_testing.processes import ServiceProcess, wait_serving

A = auth(TENANT_A_KEY)
# Idle feeds send a heartbeat every 5 s (the kit's feed), so "stale" must mean longer than that.
HEARTBEAT = 5.0
STALE_AFTER = HEARTBEAT + 1
DOWN_FOR = STALE_AFTER + 1
TIMEOUT = 2.0
SCALE = load.SCALE
pytestmark = load.RELIABILITY_MARKS
# The short version kills both at once; the long one (make reliability) each alone first.
OUTAGES = ([("registry",), ("scoring",)] if SCALE > 1 else []) + [("registry", "scoring")]


class Dialer:
    """Allocates one call after another in a thread, as a dialer does, and records every answer."""

    def __init__(self, target: str, campaign_id: str) -> None:
        self.stub = allocation_pb2_grpc.AllocationServiceStub(grpc.insecure_channel(target))
        self.campaign_id = campaign_id
        self.records: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            call_id = f"dial-{i}"
            began = time.monotonic()
            try:
                response = self.stub.AllocateNumber(allocation_pb2.AllocateNumberRequest(
                    campaign_id=self.campaign_id, destination=f"+1415902{i % 10000:04d}", call_id=call_id),
                    metadata=A, timeout=TIMEOUT)
                outcome, stale = response.caller_id, response.eligibility_staleness.ToTimedelta().total_seconds()
            except grpc.RpcError as error:
                outcome, stale = error.code().name, None
            self.records.append({"call_id": call_id, "outcome": outcome, "staleness": stale, "at": began,
                                 "elapsed": time.monotonic() - began})
            time.sleep(0.02)

    def __enter__(self) -> Dialer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def during(self, start: float, end: float) -> list[dict[str, Any]]:
        return [r for r in self.records if start <= r["at"] <= end]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def feed(stub: Any, upstream: str) -> allocation_pb2.FeedStatus:
    feeds = stub.GetReplicationStatus(allocation_pb2.GetReplicationStatusRequest(), metadata=A, timeout=5).feeds
    return next(f for f in feeds if f.upstream == upstream)


def wait_for(condition: Any, what: str, limit: float = 30.0, state: Any = None) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < limit, f"{what}: not within {limit} s" + (f"; {state()}" if state else "")
        time.sleep(0.05)
    return round(time.monotonic() - began, 2)


def health_status(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=HEALTH_ENTRY),
                                                         timeout=2).status


def test_upstreams_killed_and_restarted_while_allocation_serves(postgres):
    registry = ServiceProcess("registry", database_url=postgres.fresh(REGISTRY)).start()
    scoring = ServiceProcess("scoring", database_url=postgres.fresh(SCORING), registry_target=registry.address,
                             rescore_interval=3600)
    scoring.port = free_port()  # so that allocation can start at the same time, pointed at it
    allocation_url = postgres.fresh(ALLOCATION)
    allocation = ServiceProcess("allocation", database_url=allocation_url, registry_target=registry.address,
                                scoring_target=scoring.address, replication_stale_after=STALE_AFTER,
                                replication_health_interval=0.2)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda p: p.start(), (scoring, allocation)))
    figures: dict[str, Any] = {}
    try:
        with grpc.insecure_channel(registry.address) as channel:
            registry_stub = registry_pb2_grpc.RegistryServiceStub(channel)
            policy = registry_pb2.CallingPolicy(
                daily_cap_per_number=10000, hourly_cap_per_number=10000, sticky_caller_id=False,
                calling_window_start=types_pb2.TimeOfDay(hours=0),
                calling_window_end=types_pb2.TimeOfDay(hours=23, minutes=59))
            campaign_id = registry_stub.CreateCampaign(registry_pb2.CreateCampaignRequest(
                campaign=registry_pb2.Campaign(name="outbound", policy=policy)), metadata=A).campaign.id
            registry_stub.BatchCreateNumbers(registry_pb2.BatchCreateNumbersRequest(numbers=[
                registry_pb2.NumberSpec(phone_number=f"+1415867{5300 + i:04d}", display_name="Acme",
                                        campaign_ids=[campaign_id]) for i in range(3)]), metadata=A)
        stub = allocation_pb2_grpc.AllocationServiceStub(grpc.insecure_channel(allocation.address))

        def pool_known() -> bool:
            try:
                usage = stub.GetCampaignUsage(allocation_pb2.GetCampaignUsageRequest(campaign_id=campaign_id),
                                              metadata=A, timeout=5)
            except grpc.RpcError as error:  # the campaign has not arrived yet
                assert error.code() is grpc.StatusCode.NOT_FOUND, error
                return False
            return len(usage.numbers) == 3

        wait_for(pool_known, "allocation learns the campaign's numbers")
        # Scoring started alongside allocation, whose follower may still be backing off from a refused connect.
        wait_for(lambda: all(feed(stub, name).connected and feed(stub, name).HasField("last_sync_time")
                             for name in ("registry", "scoring")), "allocation follows both feeds")
        with Dialer(allocation.address, campaign_id) as dialer:
            for group in OUTAGES:
                victims = [{"registry": registry, "scoring": scoring}[name] for name in group]
                label = " and ".join(group)
                time.sleep(0.5)
                down = time.monotonic()
                for victim in victims:
                    victim.kill()
                figures[f"{label}: reported disconnected after (s)"] = wait_for(
                    lambda g=group: not any(feed(stub, n).connected for n in g), f"allocation notices {label} gone")
                figures[f"{label}: health NOT_SERVING after (s)"] = wait_for(
                    lambda: health_status(allocation.address) == health_pb2.HealthCheckResponse.NOT_SERVING,
                    f"{HEALTH_ENTRY} turns NOT_SERVING")
                time.sleep(max(0.0, DOWN_FOR - (time.monotonic() - down)))
                for name in group:
                    staleness = feed(stub, name).staleness.ToTimedelta().total_seconds()
                    figures[f"{name} staleness reported after {DOWN_FOR:.0f} s down (s)"] = round(staleness, 2)
                    assert staleness >= DOWN_FOR - 0.5, f"{name} down {DOWN_FOR} s, yet staleness {staleness} s"
                answered = dialer.during(down, time.monotonic())
                assert answered and all(r["outcome"].startswith("+") for r in answered), answered[-5:]
                figures[f"{label}: max staleness in answers while down (s)"] = round(
                    max(r["staleness"] for r in answered), 2)
                restarted = time.monotonic()
                with ThreadPoolExecutor(len(victims)) as pool:
                    list(pool.map(lambda v: v.start(), victims))
                for victim in victims:
                    wait_serving(victim.address, 30)
                figures[f"{label}: restart to SERVING (s)"] = round(time.monotonic() - restarted, 2)
                figures[f"{label}: allocation current again after (s)"] = wait_for(
                    lambda g=group: all(feed(stub, n).connected and feed(stub, n).staleness.ToTimedelta()
                                        .total_seconds() < HEARTBEAT + 1 for n in g)
                    and health_status(allocation.address) == health_pb2.HealthCheckResponse.SERVING,
                    f"allocation follows {label} again", state=lambda: (
                        stub.GetReplicationStatus(allocation_pb2.GetReplicationStatusRequest(), metadata=A),
                        health_status(allocation.address)))
        records = dialer.records
        failed = [r for r in records if not r["outcome"].startswith("+")]
        late = [r for r in records if r["elapsed"] > TIMEOUT + 1]
        engine = create_engine(owner_url(allocation_url))
        with engine.connect() as connection:
            ledger = dict(connection.execute(text("SELECT call_id, phone_number FROM allocations")).all())
        engine.dispose()
        lost = [r for r in records if r["outcome"].startswith("+") and ledger.get(r["call_id"]) != r["outcome"]]
        figures.update({"calls": len(records), "failed": len(failed), "outlived deadline": len(late),
                        "acknowledged lost": len(lost)})
        print("\nupstreams killed: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        assert (failed, late, lost) == ([], [], [])
    finally:
        for process in (allocation, scoring, registry):
            process.stop()
