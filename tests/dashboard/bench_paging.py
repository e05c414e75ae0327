"""How long the Numbers page takes with 100,000 numbers: first page, a page deep in the list, filters, sorts.

    .venv/bin/python tests/dashboard/bench_paging.py [--numbers 100000] [--repeat 5]

Starts registry, scoring and allocation in this process on SQLite (a temporary folder), imports the numbers
through the SDK, waits until scoring and allocation have replicated them, then times dashboard requests
through Flask's test client (median and worst of --repeat runs). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.web import sign_in

from nhm_dashboard.app import create_app
from nhm_dashboard.settings import DashboardSettings
from nhm_sdk import Client, ClientConfig
from nhm_testing.keys import TENANT_A_KEY
from nhm_testing.services import running_service


def phone(i: int) -> str:
    return f"+1212{200 + i // 10_000:03d}{i % 10_000:04d}"  # New York, exchanges 200-209…


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nhm-dashboard-bench-"))
    from nhm_allocation.app import SPEC as ALLOCATION
    from nhm_registry.app import SPEC as REGISTRY
    from nhm_scoring.app import SPEC as SCORING

    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(running_service(REGISTRY, f"sqlite:///{folder}/registry.db",
                                                       log_level="warning"))
        scoring = stack.enter_context(running_service(SCORING, f"sqlite:///{folder}/scoring.db",
                                                      registry_target=registry.address, log_level="warning"))
        allocation = stack.enter_context(running_service(
            ALLOCATION, f"sqlite:///{folder}/allocation.db", registry_target=registry.address,
            scoring_target=scoring.address, log_level="warning"))
        targets = {"registry_target": registry.address, "scoring_target": scoring.address,
                   "allocation_target": allocation.address, "remediation_target": "127.0.0.1:9"}
        client = stack.enter_context(Client(ClientConfig(api_key=TENANT_A_KEY, **targets)))
        started = time.monotonic()
        campaign = client.create_campaign("Bench").id
        for first in range(0, args.numbers, 5000):
            client.import_numbers([{"phone_number": phone(i)} for i in range(first, min(first + 5000, args.numbers))],
                                  campaign_ids=[campaign], timeout=300)
        print(f"imported {args.numbers} numbers in {time.monotonic() - started:.1f} s", flush=True)
        while client.list_health(page_size=1).first_response.counts.total < args.numbers:
            time.sleep(1)
        while client.get_capacity_plan(campaign, timeout=60).total.numbers_total < args.numbers:
            time.sleep(1)
        print(f"scoring and allocation replicated them after {time.monotonic() - started:.1f} s", flush=True)

        # A token deep in the list: walk the scoring listing in pages of 1000 to about 90% of the way.
        token = ""
        for _ in range(max(1, int(args.numbers * 0.9) // 1000)):
            token = _next_token(client, token)
        settings = DashboardSettings(session_secret="bench", log_format="json", log_level="warning", **targets)
        app = create_app(settings)
        web = app.test_client()
        sign_in(web, TENANT_A_KEY)
        cases = {
            "first page (50 rows)": "/numbers",
            "page ~90% deep": f"/numbers?page={token}",
            "area code filter": "/numbers?area_code=212",
            "search by prefix": f"/numbers?q={quote(phone(args.numbers - 60)[:-1])}",
            "status filter, no match": "/numbers?status=flagged",
            "sorted by lifecycle state": "/numbers?sort=state",
            "newest first": "/numbers?sort=newest",
        }
        print(f"{'request':<28}{'median ms':>12}{'worst ms':>12}{'rows':>6}")
        for name, url in cases.items():
            times = []
            rows = 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                response = web.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (url, response.status_code)
                rows = response.get_data(as_text=True).count("<tr data-phone=")
            print(f"{name:<28}{statistics.median(times):>12.1f}{max(times):>12.1f}{rows:>6}", flush=True)
        app.extensions["nhm_dashboard"].gateway.close()


def _next_token(client: Client, token: str) -> str:
    from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc

    stub = scoring_pb2_grpc.ScoringServiceStub(client.channel("scoring"))
    response = stub.ListHealth(scoring_pb2.ListHealthRequest(page_size=1000, page_token=token),
                               metadata=(("authorization", f"Bearer {TENANT_A_KEY}"),))
    return response.next_page_token


if __name__ == "__main__":
    main()
