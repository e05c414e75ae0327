"""Never over a cap, with two allocation processes against one PostgreSQL database and 64 concurrent clients.

Both processes follow the same (fake) registry feed into the shared database, as replicas of the service
do. Demand is ten times the pool's capacity; some call ids are sent to both processes at once.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from sqlalchemy import create_engine, text

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm.allocation.v1 import allocation_pb2_grpc
from nhm_allocation.app import SPEC
from nhm_testing.databases import owner_url
from nhm_testing.keys import STATIC_KEY_SETTINGS, TENANT_A_KEY, auth

CAP = 5
NUMBERS = [f"+1415867{5300 + i:04d}" for i in range(8)] + [f"+1213234{5600 + i:04d}" for i in range(6)] + [
    f"+1212736{3100 + i:04d}" for i in range(6)]
CLIENTS = 64
ATTEMPTS = len(NUMBERS) * CAP * 10
PROSPECTS = [f"+1415902{n:04d}" for n in range(5000)] + [f"+1212583{n:04d}" for n in range(5000)]


def start_process(url: str, upstream: str, transactions: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "NHM_ALLOCATION_DATABASE_URL": url, "NHM_ALLOCATION_PORT": "0",
           "NHM_ALLOCATION_MIGRATE_ON_START": "false", "NHM_ALLOCATION_REGISTRY_TARGET": upstream,
           "NHM_ALLOCATION_SCORING_TARGET": upstream, "NHM_API_KEYS": STATIC_KEY_SETTINGS["api_keys"],
           "NHM_SERVICE_KEY": STATIC_KEY_SETTINGS["service_key"], "NHM_LOG_LEVEL": "warning",
           "NHM_LOG_FORMAT": "json",
           # The machine is shared with the rest of the suite: give lock waits room before UNAVAILABLE.
           "NHM_ALLOCATION_DB_TIMEOUT": "15", "NHM_ALLOCATION_COALESCE_TRANSACTIONS": transactions}
    proc = subprocess.Popen([sys.executable, "-m", "nhm_allocation"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("NHM_SERVING allocation"), f"allocation did not start: {line!r}"
    return proc, int(line.split()[-1])


@pytest.mark.slow
# 32 transactions per process: nearly every call its own; 2: calls coalesced into batches that lock rows in
# arbitrary order across the two processes (deadlocks resolved by retrying, never by double counting).
@pytest.mark.parametrize("transactions", ["32", "2"])
def test_two_processes_and_64_clients_never_exceed_a_cap(postgres, upstream, transactions):
    upstream.campaign("c1", daily_cap_per_number=CAP, hourly_cap_per_number=1000, sticky_caller_id=False,
                      calling_window_start=(0, 0), calling_window_end=(0, 0),
                      max_calls_per_prospect_per_day=0, max_calls_per_prospect_per_week=0)
    for phone in NUMBERS:
        upstream.number(phone)
    url = postgres.fresh(SPEC)
    processes = [start_process(url, upstream.address, transactions) for _ in range(2)]
    channels = [grpc.insecure_channel(f"localhost:{port}") for _, port in processes]
    stubs = [allocation_pb2_grpc.AllocationServiceStub(c) for c in channels]
    try:
        deadline = time.monotonic() + 30
        for stub in stubs:  # both replicas have caught up with the feed
            while True:
                feeds = stub.GetReplicationStatus(pb.GetReplicationStatusRequest(), metadata=auth(TENANT_A_KEY)).feeds
                if {f.upstream: f.revision for f in feeds}.get("registry") == upstream.registry.head:
                    break
                assert time.monotonic() < deadline, "the replicas did not catch up"
                time.sleep(0.05)

        results: dict[str, list[tuple[str, str]]] = {}  # call id -> [(caller id or error code, process)]
        lock = threading.Lock()
        counter = itertools.count()
        destinations = random.Random(7).sample(PROSPECTS, ATTEMPTS)

        def call(stub_index: int, call_id: str, destination: str) -> None:
            request = pb.AllocateNumberRequest(campaign_id="c1", destination=destination, call_id=call_id)
            for _attempt in range(5):
                try:
                    outcome = stubs[stub_index].AllocateNumber(request, metadata=auth(TENANT_A_KEY),
                                                               timeout=30).caller_id
                except grpc.RpcError as exc:
                    outcome = exc.code().name
                # ABORTED: deadlocks between the two processes outlasted the server's own retries; nothing was
                # applied, and a dialer resends the same call id (which must then get the one answer).
                if outcome != "ABORTED":
                    break
            with lock:
                results.setdefault(call_id, []).append((outcome, str(stub_index)))

        def client() -> None:
            while (i := next(counter)) < ATTEMPTS:
                call_id = f"call-{i}"
                if i % 10 == 0:  # the same call id to both processes at once
                    twin = threading.Thread(target=call, args=(1, call_id, destinations[i]))
                    twin.start()
                    call(0, call_id, destinations[i])
                    twin.join()
                else:
                    call(i % 2, call_id, destinations[i])

        with ThreadPoolExecutor(CLIENTS) as pool:
            for _ in range(CLIENTS):
                pool.submit(client)
    finally:
        for channel in channels:
            channel.close()
        for proc, _ in processes:
            proc.terminate()
        for proc, _ in processes:
            proc.wait(timeout=30)

    outcomes = Counter()
    per_number = Counter()
    for call_id, answers in results.items():
        assert len({a for a, _ in answers}) == 1, f"{call_id} got different answers: {answers}"
        outcome = answers[0][0]
        outcomes["allocated" if outcome.startswith("+") else outcome] += 1
        if outcome.startswith("+"):
            per_number[outcome] += 1
    assert set(outcomes) == {"allocated", "RESOURCE_EXHAUSTED"}, outcomes  # every refusal is RESOURCE_EXHAUSTED
    assert len(results) == ATTEMPTS
    assert per_number == dict.fromkeys(NUMBERS, CAP)  # every number exactly at its cap, none over
    engine = create_engine(owner_url(url))
    try:
        with engine.connect() as connection:
            usage = dict(connection.execute(text("SELECT phone_number, day_used FROM number_usage")).all())
            ledger = dict(connection.execute(text(
                "SELECT phone_number, count(*) FROM allocations WHERE NOT released GROUP BY phone_number")).all())
            over = connection.execute(text(
                "SELECT count(*) FROM (SELECT phone_number, day_start FROM allocations GROUP BY phone_number, "
                "day_start HAVING count(*) > :cap) AS x"), {"cap": CAP}).scalar()
    finally:
        engine.dispose()
    assert usage == ledger == dict.fromkeys(NUMBERS, CAP)  # the counters equal the ledger
    assert over == 0
