"""Fault runs: the load of the invariant tests, a fault injected while it runs, then every invariant checked.

A run starts two allocation processes on one database (PostgreSQL, directly or through a TcpProxy in front of
it, or a SQLite file), optionally puts a proxy in front of the services too, drives the load from client
processes and calls `fault(ctx)` in a thread once the load is under way. When the load is over, every call that
ended without a definite answer (UNAVAILABLE, DEADLINE_EXCEEDED ...) is retried with its call id, as a dialer
would, until it gets one; then the invariants are checked on the ledger and on every answer the clients saw.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from allocation.support import FakeUpstream
from invariants import load
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from nhm_allocation.app import SPEC
from nhm_testing.databases import owner_url
from nhm_testing.processes import ServiceProcess
from nhm_testing.proxy import TcpProxy

FAULT_CAMPAIGNS = {"capped", "ample", "prospects"}
CLIENTS, THREADS, PROCESSES = 3, 12, 2
# Errors a fault may cause; anything else (INTERNAL, UNKNOWN ...) is a failure.
FAULT_ERRORS = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED")


@dataclass
class FaultContext:
    processes: list[ServiceProcess]
    upstream: FakeUpstream
    database_url: str
    db_proxy: TcpProxy | None
    targets: list[str]
    figures: dict[str, Any] = field(default_factory=dict)
    probes: list[dict[str, Any]] = field(default_factory=list)


def probe(context: FaultContext, target: str, timeout: float = 1.0) -> bool:
    """One allocation from the ample campaign through `target` succeeds now (recorded like any other call)."""
    job = {"campaign": "ample", "tenant": load.TENANT_A, "key": load.KEYS[load.TENANT_A],
           "destination": "+12125839999", "call_id": f"probe-{len(context.probes)}"}
    began = time.monotonic()
    with grpc.insecure_channel(target) as channel:
        try:
            outcome = allocation_pb2_grpc.AllocationServiceStub(channel).AllocateNumber(
                allocation_pb2.AllocateNumberRequest(campaign_id=job["campaign"], destination=job["destination"],
                                                     call_id=job["call_id"]),
                metadata=(("authorization", f"Bearer {job['key']}"),), timeout=timeout).caller_id
        except grpc.RpcError as error:
            outcome = error.code().name
    context.probes.append({**job, "outcome": outcome, "elapsed": time.monotonic() - began, "timeout": timeout})
    return outcome.startswith("+")


def seconds_until_serving_calls(context: FaultContext, target: str, since: float, limit: float = 60.0) -> float:
    """Seconds from `since` (a monotonic time) until an allocation through `target` succeeds again."""
    while not probe(context, target):
        assert time.monotonic() - since < limit, f"{target} did not serve calls again within {limit} s"
        time.sleep(0.05)
    return round(time.monotonic() - since, 2)


def settle(targets: list[str], records: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Retry, with its own call id, every call that never got a definite answer; their records."""
    final: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        key = (r["tenant"], r["call_id"])
        if key not in final or not _definite(final[key]["outcome"]):
            final[key] = r
    pending = [r for r in final.values() if not _definite(r["outcome"])]
    retries: list[dict[str, Any]] = []
    channels = [grpc.insecure_channel(t) for t in targets]
    stubs = [allocation_pb2_grpc.AllocationServiceStub(c) for c in channels]

    def resend(job: dict[str, Any], stub: Any) -> dict[str, Any]:
        began = time.monotonic()
        try:
            outcome = stub.AllocateNumber(allocation_pb2.AllocateNumberRequest(
                campaign_id=job["campaign"], destination=job["destination"], call_id=job["call_id"]),
                metadata=(("authorization", f"Bearer {job['key']}"),), timeout=timeout).caller_id
        except grpc.RpcError as error:
            outcome = error.code().name
        return {**job, "outcome": outcome, "elapsed": time.monotonic() - began, "timeout": timeout, "retry": True}

    try:
        with ThreadPoolExecutor(16) as pool:
            for attempt in range(40):
                answers = list(pool.map(resend, pending, [stubs[attempt % len(stubs)]] * len(pending)))
                retries += answers
                pending = [job for job, answer in zip(pending, answers, strict=True)
                           if not _definite(answer["outcome"])]
                if not pending:
                    break
                time.sleep(0.25)
    finally:
        for channel in channels:
            channel.close()
    assert not pending, f"{len(pending)} calls never got a definite answer after the fault"
    return retries


def wait_for_allocations(url: str, count: int, limit: float = 60.0) -> None:
    engine = create_engine(owner_url(url))
    began = time.monotonic()
    try:
        with engine.connect() as connection:
            while connection.execute(text("SELECT count(*) FROM allocations")).scalar() < count:
                assert time.monotonic() - began < limit, f"fewer than {count} allocations after {limit} s"
                connection.rollback()
                time.sleep(0.05)
    finally:
        engine.dispose()


def _definite(outcome: str) -> bool:
    return outcome.startswith("+") or outcome in load.DEFINITE


@dataclass
class FaultResult:
    run: load.Run
    figures: dict[str, Any]
    seconds: float

    def report(self, name: str) -> dict[str, list[str]]:
        """Every invariant's violations, the errors a fault may not cause, deadlines; printed with the figures."""
        found = load.violations(self.run)
        found["unexpected_errors"] = load.unexpected_errors(self.run, FAULT_ERRORS)
        found["outlived_deadline"] = load.outlived_deadline(self.run)
        errors = Counter(r["outcome"] for r in self.run.records if not r["outcome"].startswith("+")
                         and r["outcome"] not in load.DEFINITE)
        staleness = [r["staleness"] for r in self.run.records if r.get("staleness") is not None]
        figures = {**self.figures, "sends": sum(1 for r in self.run.records if not r.get("replay")),
                   "errors during the fault": dict(errors),
                   "retried to a definite answer": sum(1 for r in self.run.records if r.get("retry")),
                   "acknowledged lost": len(found["lost_acknowledged"]),
                   "outlived deadline": len(found["outlived_deadline"]),
                   "max staleness reported (s)": round(max(staleness), 2) if staleness else None}
        print(f"\nfault {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        return found


def fault_run(fresh_database: Callable[[Any], str], upstream: FakeUpstream, fault: Callable[[FaultContext], None], *,
              through_db_proxy: bool = False, through_service_proxy: bool = False, sdk: bool = False,
              timeout: float = 3.0,
              scale: int = 1, calls: float = 0.6, start_after: int = 60) -> FaultResult:
    """`calls` scales the scenario's number of calls (not its caps): the short version is 0.6 of it. The fault
    starts once `start_after` allocations are in the ledger (mid-load, whatever the client processes' start-up
    time)."""
    campaigns = [c for c in load.scenario(scale) if c.campaign_id in FAULT_CAMPAIGNS and c.tenant == load.TENANT_A]
    for c in campaigns:
        c.calls = int(c.calls * calls)
    load.publish(upstream, campaigns)
    url = fresh_database(SPEC)
    db_proxy = service_url = None
    service_url = url
    if through_db_proxy:
        parsed = make_url(url)
        db_proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
        service_url = parsed.set(host="127.0.0.1", port=db_proxy.port).render_as_string(hide_password=False)
    # Statements and lock waits give up after 5 s (the default), so a stalled database frees the server.
    with ThreadPoolExecutor(PROCESSES) as pool:
        processes = list(pool.map(lambda _: load.start_allocation(service_url, upstream.address, db_timeout=5),
                                  range(PROCESSES)))
    service_proxies = [TcpProxy("127.0.0.1", p.port).start() for p in processes] if through_service_proxy else []
    targets = [p.address for p in service_proxies] if service_proxies else [p.address for p in processes]
    context = FaultContext(processes, upstream, url, db_proxy, targets)
    context.figures["service proxies"] = service_proxies
    try:
        load.wait_caught_up([p.address for p in processes], upstream)
        failure: list[BaseException] = []

        def inject() -> None:
            try:
                wait_for_allocations(url, start_after)
                fault(context)
            except BaseException as error:  # noqa: BLE001  (re-raised in the test's thread after the load)
                failure.append(error)

        injector = threading.Thread(target=inject)
        began = time.monotonic()
        injector.start()
        records, releases = load.run_clients(targets, load.Jobs.plan(campaigns, CLIENTS, PROCESSES),
                                             threads=THREADS, timeout=timeout, sdk=sdk)
        injector.join()
        seconds = time.monotonic() - began
        if failure:
            raise failure[0]
        records += context.probes
        direct = [p.address for p in processes]
        records += settle(direct, records, timeout=10)
        records += load.replay(direct[0], records, limit=200, timeout=10)
    finally:
        for proxy in service_proxies:
            proxy.close()
        for process in processes:
            process.stop()
        if db_proxy is not None:
            db_proxy.close()
    context.figures.pop("service proxies")
    return FaultResult(load.Run(campaigns, records, load.Ledger.read(url), releases), context.figures, seconds)
