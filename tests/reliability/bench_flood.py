"""Benchmark: does a tenant flooding bulk calls slow another tenant down? (`make reliability` runs it.)

A real registry process (on a SQLite file, then on PostgreSQL with NHM_TEST_POSTGRES_URL), with its bulk lane
(--bulk-lane, as deployed) or without. Tenant A makes a steady stream of ordinary calls (GetNumber,
ListCampaigns) and its p50/p99 are measured alone, then while tenant B, from another process, floods
BatchCreateNumbers (100 numbers each) from 16 threads, twice: once waiting as each refusal's RetryInfo says
(what the SDK's ResourceExhaustedError.retry_after tells a client to do), once ignoring it and calling again at
once; in --rounds rounds of the three, each phase --seconds long, the samples of each phase pooled. Many short
rounds, so that the machine's own hiccups land in every phase alike: with 3 rounds of 10 s, A's p99 alone moved
between 5 and 24 ms from one run to the next here. B is held to its limits (tenant_bulk_rate, tenant_bulk_burst,
tenant_bulk_concurrency); the excess is refused at once with RESOURCE_EXHAUSTED. Prints the figures; exits 1 if,
on either database, A's p99 while B floods waiting as told is more than 20% above its p99 alone.

    .venv/bin/python tests/reliability/bench_flood.py [--bulk-lane] [--rounds 10] [--seconds 3] [--limit-rate 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from google.rpc import error_details_pb2

from nhm.registry.v1 import registry_pb2 as pb
from nhm.registry.v1 import registry_pb2_grpc
from nhm_testing.databases import PostgresProvisioner, SqliteProvisioner
from nhm_testing.errors import typed_detail
from nhm_testing.keys import TENANT_A_KEY, TENANT_B_KEY, auth
from nhm_testing.processes import ServiceProcess

# Pause before each phase of A alone, so that the calls of the flood before it have ended.
SETTLE_SECONDS = 1.0


def quiet_tenant(stub: registry_pb2_grpc.RegistryServiceStub, seconds: float, stop: threading.Event) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline and not stop.is_set():
        started = time.perf_counter()
        if i % 2:
            stub.ListCampaigns(pb.ListCampaignsRequest(page_size=10), metadata=auth(TENANT_A_KEY))
        else:
            stub.GetNumber(pb.GetNumberRequest(phone_number="+14152220123"), metadata=auth(TENANT_A_KEY))
        latencies.append(time.perf_counter() - started)
        i += 1
        time.sleep(0.01)
    return latencies


def flood(stub: registry_pb2_grpc.RegistryServiceStub, thread: int, stop: threading.Event,
          counts: dict[str, int], lock: threading.Lock, wait_as_told: bool) -> None:
    batch = 0
    while not stop.is_set():
        numbers = [pb.NumberSpec(phone_number=f"+1212{200 + thread:03d}{batch % 10}{i:03d}") for i in range(100)]
        batch += 1
        try:
            stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=numbers), metadata=auth(TENANT_B_KEY))
            outcome = "accepted"
        except grpc.RpcError as error:
            outcome = error.code().name + refused_for(error)
            if wait_as_told:
                stop.wait(retry_after(error))
        with lock:
            counts[outcome] = counts.get(outcome, 0) + 1


def refused_for(error: grpc.RpcError) -> str:
    """Which limit refused a call: " (items)", " (calls)" or " (at once)", from its ErrorInfo ("" for others)."""
    info = typed_detail(error, error_details_pb2.ErrorInfo)
    for key, name in (("items_per_second", "items"), ("rate_per_second", "calls"), ("concurrent_calls", "at once")):
        if info is not None and key in info.metadata:
            return f" ({name})"
    return ""


def retry_after(error: grpc.RpcError) -> float:
    """Seconds the refusal's google.rpc.RetryInfo asks for (0 without one)."""
    info = typed_detail(error, error_details_pb2.RetryInfo)
    return info.retry_delay.ToTimedelta().total_seconds() if info is not None else 0.0


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def run_flood(address: str, seconds: float, wait_as_told: bool) -> None:
    """The flooding tenant, in a process of its own (a client in the server's process would share its GIL)."""
    channel = grpc.insecure_channel(address)
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    stop, lock, counts = threading.Event(), threading.Lock(), {}
    flooders = [threading.Thread(target=flood, args=(stub, t, stop, counts, lock, wait_as_told)) for t in range(16)]
    for thread in flooders:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in flooders:
        thread.join()
    channel.close()
    print(json.dumps(counts))


def measure_while_flooded(stub: registry_pb2_grpc.RegistryServiceStub, address: str, seconds: float,
                          wait_as_told: bool) -> tuple[list[float], dict[str, int]]:
    command = [sys.executable, __file__, "--flood", address, "--seconds", str(seconds + 2)]
    flooder = subprocess.Popen([*command, *(["--wait-as-told"] if wait_as_told else [])], stdout=subprocess.PIPE,
                               text=True)
    time.sleep(1)  # the flood under way
    flooded = quiet_tenant(stub, seconds, threading.Event())
    counts = json.loads(flooder.communicate(timeout=120)[0].strip().splitlines()[-1])
    return flooded, counts


def summary(latencies: list[float]) -> str:
    return f"{percentile(latencies, 50):.2f}/{percentile(latencies, 99):.2f} ms ({len(latencies)} calls)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each phase of a round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of alone, flooded as told, flooded rudely")
    parser.add_argument("--limit-rate", type=float, default=100.0, help="tenant_bulk_rate (calls a second)")
    parser.add_argument("--limit-concurrency", type=int, default=4, help="tenant_bulk_concurrency (calls at once)")
    parser.add_argument("--limit-items", type=float, default=0.0,
                        help="tenant_bulk_item_rate (items a second; bursts of as many); 0: off, the default")
    parser.add_argument("--bulk-lane", action="store_true", help="serve bulk calls from the bulk lane (bulk_lane)")
    parser.add_argument("--flood", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--wait-as-told", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        run_flood(args.flood, args.seconds, args.wait_as_told)
        return 0
    rises = [measure(backend, args) for backend in ("sqlite", "postgresql")
             if backend == "sqlite" or os.environ.get("NHM_TEST_POSTGRES_URL")]
    return 0 if all(rise <= 20 for rise in rises) else 1


def measure(backend: str, args: argparse.Namespace) -> float:
    """One backend's rounds; prints its figures and returns A's p99 rise while B floods waiting as told (%)."""
    from nhm_registry.app import SPEC

    with tempfile.TemporaryDirectory() as folder:
        provisioner = (PostgresProvisioner(os.environ["NHM_TEST_POSTGRES_URL"]) if backend == "postgresql"
                       else SqliteProvisioner(Path(folder)))
        try:
            server = ServiceProcess("registry", database_url=provisioner.fresh(SPEC), tenant_bulk_rate=args.limit_rate,
                                    tenant_bulk_burst=int(args.limit_rate),
                                    tenant_bulk_concurrency=args.limit_concurrency, bulk_lane=args.bulk_lane,
                                    tenant_bulk_item_rate=args.limit_items,
                                    tenant_bulk_item_burst=max(1, int(args.limit_items)))
            with server, grpc.insecure_channel(server.address) as channel:
                stub = registry_pb2_grpc.RegistryServiceStub(channel)
                stub.CreateNumber(pb.CreateNumberRequest(number=pb.NumberSpec(phone_number="+14152220123")),
                                  metadata=auth(TENANT_A_KEY))
                # Rounds of alone, flooded politely, flooded rudely: a machine that drifts during the run then
                # drifts under every phase alike instead of passing for the flood's effect.
                alone: list[float] = []
                polite: list[float] = []
                rude: list[float] = []
                polite_counts: Counter[str] = Counter()
                rude_counts: Counter[str] = Counter()
                for _ in range(args.rounds):
                    time.sleep(SETTLE_SECONDS)  # the last flood's calls end before A is measured alone
                    alone += quiet_tenant(stub, args.seconds, threading.Event())
                    latencies, counts = measure_while_flooded(stub, server.address, args.seconds, True)
                    polite += latencies
                    polite_counts.update(counts)
                    latencies, counts = measure_while_flooded(stub, server.address, args.seconds, False)
                    rude += latencies
                    rude_counts.update(counts)
        finally:
            provisioner.close()
    p99_alone = percentile(alone, 99)
    lane = "bulk lane" if args.bulk_lane else "one process"
    if args.limit_items:
        lane += f", {args.limit_items:g} items/s"
    print(f"flood [{backend}, {lane}, {args.rounds} rounds of {args.seconds:g} s]: tenant A p50/p99 alone "
          f"{summary(alone)}")
    rises = {}
    for label, flooded, counts in (("waiting as told", polite, polite_counts),
                                   ("ignoring RetryInfo", rude, rude_counts)):
        rises[label] = (percentile(flooded, 99) / p99_alone - 1) * 100
        print(f"  while B floods {label}: {summary(flooded)}: p99 {rises[label]:+.0f}%; B's bulk calls: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return rises["waiting as told"]


if __name__ == "__main__":
    sys.exit(main())
