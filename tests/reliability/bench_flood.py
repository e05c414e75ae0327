"""Benchmark: does a tenant flooding bulk calls slow another tenant down? (`make reliability` runs it.)

A real registry process (SQLite file, or PostgreSQL with NHM_TEST_POSTGRES_URL). Tenant A makes a steady
stream of ordinary calls (GetNumber, ListCampaigns) and its p50/p99 are measured twice: alone, then while
tenant B, from another process, floods BatchCreateNumbers (100 numbers each) from 16 threads as fast as it
can. B is held to its limits (tenant_bulk_rate, tenant_bulk_burst, tenant_bulk_concurrency); the excess is
refused at once with RESOURCE_EXHAUSTED. Prints the figures; exits 1 if A's p99 under the flood is more than
20% above its p99 alone.

    .venv/bin/python tests/reliability/bench_flood.py [--seconds 20] [--limit-rate 100] [--limit-concurrency 4]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from nhm.registry.v1 import registry_pb2 as pb
from nhm.registry.v1 import registry_pb2_grpc
from nhm_testing.databases import PostgresProvisioner, SqliteProvisioner
from nhm_testing.keys import TENANT_A_KEY, TENANT_B_KEY, auth
from nhm_testing.processes import ServiceProcess


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
          counts: dict[str, int], lock: threading.Lock) -> None:
    batch = 0
    while not stop.is_set():
        numbers = [pb.NumberSpec(phone_number=f"+1212{200 + thread:03d}{batch % 10}{i:03d}") for i in range(100)]
        batch += 1
        try:
            stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=numbers), metadata=auth(TENANT_B_KEY))
            outcome = "accepted"
        except grpc.RpcError as error:
            outcome = error.code().name
        with lock:
            counts[outcome] = counts.get(outcome, 0) + 1


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def run_flood(address: str, seconds: float) -> None:
    """The flooding tenant, in a process of its own (a client in the server's process would share its GIL)."""
    channel = grpc.insecure_channel(address)
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    stop, lock, counts = threading.Event(), threading.Lock(), {}
    flooders = [threading.Thread(target=flood, args=(stub, t, stop, counts, lock)) for t in range(16)]
    for thread in flooders:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in flooders:
        thread.join()
    channel.close()
    print(json.dumps(counts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--limit-rate", type=float, default=100.0, help="tenant_bulk_rate (calls a second)")
    parser.add_argument("--limit-concurrency", type=int, default=4, help="tenant_bulk_concurrency (calls at once)")
    parser.add_argument("--flood", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        run_flood(args.flood, args.seconds)
        return 0
    from nhm_registry.app import SPEC

    url_variable = os.environ.get("NHM_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as folder:
        provisioner = PostgresProvisioner(url_variable) if url_variable else SqliteProvisioner(Path(folder))
        backend = "postgresql" if url_variable else "sqlite"
        try:
            server = ServiceProcess("registry", database_url=provisioner.fresh(SPEC), tenant_bulk_rate=args.limit_rate,
                                    tenant_bulk_burst=int(args.limit_rate),
                                    tenant_bulk_concurrency=args.limit_concurrency)
            with server, grpc.insecure_channel(server.address) as channel:
                stub = registry_pb2_grpc.RegistryServiceStub(channel)
                stub.CreateNumber(pb.CreateNumberRequest(number=pb.NumberSpec(phone_number="+14152220123")),
                                  metadata=auth(TENANT_A_KEY))
                alone = quiet_tenant(stub, args.seconds, threading.Event())
                flooder = subprocess.Popen([sys.executable, __file__, "--flood", server.address, "--seconds",
                                            str(args.seconds + 2)], stdout=subprocess.PIPE, text=True)
                time.sleep(1)  # the flood under way
                flooded = quiet_tenant(stub, args.seconds, threading.Event())
                counts = json.loads(flooder.communicate(timeout=120)[0].strip().splitlines()[-1])
        finally:
            provisioner.close()
    p99_alone, p99_flooded = percentile(alone, 99), percentile(flooded, 99)
    rise = (p99_flooded / p99_alone - 1) * 100
    print(f"flood [{backend}]: tenant A p50/p99 alone {percentile(alone, 50):.2f}/{p99_alone:.2f} ms "
          f"({len(alone)} calls); while B floods {percentile(flooded, 50):.2f}/{p99_flooded:.2f} ms "
          f"({len(flooded)} calls): p99 {rise:+.0f}%; B's bulk calls: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0 if rise <= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
