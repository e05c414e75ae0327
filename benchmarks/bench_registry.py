"""Registry benchmark: bulk-import rate and ListNumbers latency, through a real server on loopback.

    .venv/bin/python benchmarks/bench_registry.py [--sizes 100,100000] [--postgres URL]

For each backend (SQLite in a temporary folder, and PostgreSQL when --postgres names a database the benchmark
may fill) and each size, one tenant imports that many numbers with BatchCreateNumbers (10,000 per request),
then asks for a page of 100 numbers many times: the first page, the same filtered and ordered by update time,
and the last page (reached by following page tokens, to show keyset pages do not slow down with depth).
Each run uses fresh tenants, so a PostgreSQL database is only added to, never emptied.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import grpc
from load import timed

from nhm.registry.v1 import registry_pb2 as pb
from nhm.registry.v1 import registry_pb2_grpc
from nhm.type.v1 import types_pb2 as types
from nhm_platform.database_roles import application_url
from nhm_platform.logs import configure_logging
from nhm_platform.service import start_service
from nhm_registry.app import SPEC

BATCH = 10_000
PAGE = 100
AREA_CODES = ("415", "212", "305", "512")


def phone(i: int) -> str:
    """Distinct valid caller IDs over four area codes: +1 <area> <exchange 200-999> <line>."""
    area = AREA_CODES[i % len(AREA_CODES)]
    n = i // len(AREA_CODES)
    return f"+1{area}{200 + n // 10_000:03d}{n % 10_000:04d}"


def bench_size(stub: registry_pb2_grpc.RegistryServiceStub, metadata: tuple[tuple[str, str], ...], size: int,
               repeat: int) -> list[tuple[str, str]]:
    started = time.perf_counter()
    for start in range(0, size, BATCH):
        specs = [pb.NumberSpec(phone_number=phone(i), labels={"pool": "bench"})
                 for i in range(start, min(size, start + BATCH))]
        stub.BatchCreateNumbers(pb.BatchCreateNumbersRequest(numbers=specs), metadata=metadata, timeout=600)
    rate = size / (time.perf_counter() - started)

    first = pb.ListNumbersRequest(page_size=PAGE)
    filtered = pb.ListNumbersRequest(page_size=PAGE, area_code="415", states=[types.LIFECYCLE_STATE_ACTIVE],
                                     order_by=pb.NUMBER_ORDER_BY_UPDATE_TIME, descending=True)
    token, last = "", first
    while True:  # follow the tokens to the last page
        reply = stub.ListNumbers(pb.ListNumbersRequest(page_size=1000, page_token=token), metadata=metadata)
        if not reply.next_page_token:
            break
        token = reply.next_page_token
        last = pb.ListNumbersRequest(page_size=PAGE, page_token=token)
    rows = [("bulk import", f"{rate:,.0f} numbers/s")]
    for name, request in (("list first page", first), ("list filtered+ordered", filtered), ("list last page", last)):
        p50, p99 = timed(lambda request=request: stub.ListNumbers(request, metadata=metadata), repeat)
        rows.append((name, f"p50 {p50:.1f} ms  p99 {p99:.1f} ms"))
    return rows


def run_backend(name: str, url: str, sizes: list[int], repeat: int) -> list[tuple[str, int, str, str]]:
    run = secrets.token_hex(3)
    keys = {size: f"nhm_bench_{run}_{size}_{secrets.token_hex(8)}" for size in sizes}
    settings = SPEC.load_settings(
        host="127.0.0.1", port=0, database_url=application_url(url), migration_database_url=url,
        log_format="json", log_level="warning", grace_period=0.0,
        api_keys=",".join(f"bench-{run}-{size}={key}" for size, key in keys.items()))
    running, port = start_service(SPEC, settings)
    results = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            for size in sizes:
                metadata = (("authorization", f"Bearer {keys[size]}"),)
                for what, figure in bench_size(stub, metadata, size, repeat):
                    results.append((name, size, what, figure))
    finally:
        running.stop(0)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,100000", help="comma-separated numbers per tenant")
    parser.add_argument("--postgres", default="", help="postgresql+psycopg:// URL of a database to fill")
    parser.add_argument("--repeat", type=int, default=200, help="calls per latency figure")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    configure_logging("json", "warning")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_sqlite:
            results += run_backend("sqlite", f"sqlite:///{Path(folder) / 'registry.db'}", sizes, args.repeat)
        if args.postgres:
            results += run_backend("postgresql", args.postgres, sizes, args.repeat)
    print(f"{'backend':<11} {'numbers':>8}  {'measure':<22} figure")
    for backend, size, what, figure in results:
        print(f"{backend:<11} {size:>8,}  {what:<22} {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
