"""Multi-process proof on one machine, with the launcher `make up-local` runs (nhm_platform.devstack).

Each service is its own OS process against one PostgreSQL server (one database per service, migrated first by
each service's `migrate` command, as the production migration step does). Two allocation replicas share one
port, one on 127.0.0.1 and one on ::1, and the SDK reaches them through `dns:///localhost:<port>` with round
robin. The dialer's loop runs through them: numbers and campaigns registered, calls allocated from many threads
and their outcomes reported, reputation labels flag a number, remediation quarantines it and neither replica
hands it out any more. Both replicas' metrics show they served calls, and no number went over its daily cap.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from nhm.type.v1 import types_pb2 as types
from nhm_platform.devstack import SERVICES
from nhm_sdk import Client, ClientConfig, NotFoundError, NothingEligibleError
from nhm_testing.databases import POSTGRES_URL_VARIABLE, PostgresProvisioner
from nhm_testing.processes import free_port_block

# Eleven processes start on a shared machine: more time than the suite's default per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CAP = 5
POOL = ("+14158675301", "+14158675302", "+14158675303")
BAD = "+14158675309"
# Calls at any hour, so the test passes whenever it runs; distinct prospects so per-prospect limits stay out.
ALL_DAY = {"calling_window_start": "00:00", "calling_window_end": "23:59", "sticky_caller_id": False,
           "hourly_cap_per_number": 50}
PULLED = (types.LIFECYCLE_STATE_QUARANTINED, types.LIFECYCLE_STATE_RESTING)


@dataclass
class Stack:
    base_port: int
    api_key: str
    metrics: dict[str, str]  # process label -> /metrics URL

    @property
    def allocation_port(self) -> int:
        return self.base_port + SERVICES.index("allocation")

    def client(self, allocation_target: str | None = None) -> Client:
        targets = {f"{name}_target": f"localhost:{self.base_port + offset}" for offset, name in enumerate(SERVICES)}
        targets["allocation_target"] = allocation_target or f"dns:///localhost:{self.allocation_port}"
        return Client(ClientConfig(api_key=self.api_key, **targets))

    def replica_clients(self) -> dict[str, Client]:
        """A client pinned to each allocation replica."""
        return {"allocation-1": self.client(f"ipv4:127.0.0.1:{self.allocation_port}"),
                "allocation-2": self.client(f"ipv6:[::1]:{self.allocation_port}")}


def read_banner(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    lines: list[str] = []
    done = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    done.wait(timeout)
    return lines


@pytest.fixture
def stack(postgres: PostgresProvisioner, tmp_path: Path) -> Iterator[Stack]:
    base = free_port_block(len(SERVICES) + 1 + len(SERVICES) + 1)
    dashboard_port, metrics_base = base + len(SERVICES), base + len(SERVICES) + 1
    server = make_url(os.environ[POSTGRES_URL_VARIABLE]).set(database=f"nhmt{os.getpid()}_stack")
    log = tmp_path / "stack.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nhm_platform.devstack", "--data-dir", str(tmp_path / "data"),
             "--base-port", str(base), "--dashboard-port", str(dashboard_port),
             "--postgres-url", server.render_as_string(hide_password=False), "--allocation-replicas", "2",
             "--metrics-base-port", str(metrics_base)],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "NHM_LOG_FORMAT": "json", "NHM_GRACE_PERIOD": "2"})
    try:
        lines = read_banner(proc, timeout=180)
        banner = "".join(lines)
        assert "nhm is running" in banner, banner + log.read_text()[-5000:]
        assert f"dns:///localhost:{base + 2}" in banner and f"[::1]:{base + 2}" in banner, banner
        api_key = next(line.split()[-1] for line in lines if line.startswith("API key:"))
        metrics = dict(re.findall(r"^  (\S+)\s+(http://\S+/metrics)$", banner, re.M))
        assert set(metrics) == {"registry", "scoring", "allocation-1", "allocation-2", "remediation"}, banner
        yield Stack(base, api_key, metrics)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        for service in SERVICES:
            postgres.drop(server.set(database=f"{server.database}_{service}").render_as_string(hide_password=False))
    assert code == 0, log.read_text()[-5000:]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def allocate_calls(client: Client, campaign_id: str, count: int) -> tuple[Counter[str], list[dict[str, int]]]:
    """Dial `count` prospects from 8 lines, reporting each call's outcome: (caller IDs used, refusals)."""

    def dial(i: int) -> str | dict[str, int]:
        answered = i % 3 == 0
        try:
            with client.call(campaign_id, f"+1415902{i:04d}") as call:
                call.report(answered=answered, talk_duration=75 if answered else None,
                            sip_code=200 if answered else 480)
                return call.caller_id
        except NothingEligibleError as exc:
            return exc.exclusions

    with ThreadPoolExecutor(max_workers=8) as lines:
        results = list(lines.map(dial, range(count)))
    return Counter(r for r in results if isinstance(r, str)), [r for r in results if isinstance(r, dict)]


def allocate_calls_served(metrics_url: str) -> Counter[str]:
    """AllocateNumber calls one process answered, by status code (from its Prometheus metrics)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:  # noqa: S310 (a URL the launcher printed)
        text = reply.read().decode()
    served: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "nhm_rpc_total" and sample.labels["method"].endswith("/AllocateNumber"):
                served[sample.labels["code"]] += int(sample.value)
    return served


def knows_campaign(client: Client, campaign_id: str, numbers: int) -> bool:
    try:
        return len(client.get_campaign_usage(campaign_id).numbers) == numbers
    except NotFoundError:
        return False


def scored(client: Client, phone: str) -> bool:
    try:
        client.get_health(phone)
        return True
    except NotFoundError:
        return False


def refuses(client: Client, campaign_id: str) -> dict[str, int] | None:
    try:
        client.allocate_number(campaign_id, "+14159029999")
    except NothingEligibleError as exc:
        return exc.exclusions
    return None


def test_two_allocation_replicas_behind_dns_round_robin_run_the_whole_loop(stack: Stack) -> None:
    client = stack.client()
    replicas = stack.replica_clients()
    try:
        # Register a campaign with a small daily cap and its numbers, and a campaign of one number to flag.
        campaign = client.create_campaign("multi-process", policy={**ALL_DAY, "daily_cap_per_number": CAP})
        client.import_numbers([{"phone_number": n, "display_name": "Acme", "attestation": "A"} for n in POOL],
                              campaign_ids=[campaign.id])
        solo = client.create_campaign("to be flagged", policy={**ALL_DAY, "daily_cap_per_number": 100})
        client.import_numbers([{"phone_number": BAD, "display_name": "Acme", "attestation": "A"}],
                              campaign_ids=[solo.id])
        for name, replica in replicas.items():
            wait_for(lambda r=replica: knows_campaign(r, campaign.id, len(POOL)) and knows_campaign(r, solo.id, 1),
                     f"{name} to learn the campaigns from the registry")
        wait_for(lambda: all(scored(client, n) for n in (*POOL, BAD)), "scoring to learn the numbers")

        # Many calls from many lines through the round-robin channel: each number exactly at its cap.
        calls = 40
        allocated, refusals = allocate_calls(client, campaign.id, calls)
        assert allocated == dict.fromkeys(POOL, CAP)
        assert len(refusals) == calls - CAP * len(POOL)
        assert all(refusal == {"DAILY_CAP": len(POOL)} for refusal in refusals), refusals
        for replica in replicas.values():
            for number in POOL:
                assert replica.get_number_usage(number, campaign_id=campaign.id).calls_today == CAP

        # Both replicas answered AllocateNumber calls, and handed out caller IDs.
        served = {name: allocate_calls_served(stack.metrics[name]) for name in replicas}
        assert all(counts["OK"] > 0 for counts in served.values()), served
        assert sum(counts["OK"] for counts in served.values()) >= CAP * len(POOL)
        assert sum(sum(counts.values()) for counts in served.values()) >= calls

        # The reported outcomes reached scoring.
        assert client.outcomes.flush(30)
        assert client.outcomes.stats.accepted == CAP * len(POOL), client.outcomes.stats
        for number in POOL:
            wait_for(lambda n=number: sum(d.outbound_calls for d in client.call_activity(n, days=2).days) == CAP,
                     f"scoring to count {number}'s calls")

        # The flagged number: allocated while healthy; spam labels from two sources make scoring flag it,
        # remediation open a case and quarantine it, and then neither replica hands it out.
        with client.call(solo.id, "+14159020001") as call:
            assert call.caller_id == BAD
            call.report(answered=False, sip_code=608)
        now = datetime.now(UTC)
        summary = client.report_reputation_observations([
            {"phone_number": BAD, "source": source, "label": "SPAM", "raw_label": "Spam Likely", "observe_time": now}
            for source in ("HIYA", "NOMOROBO")])
        assert summary.accepted == 2
        wait_for(lambda: client.get_health(BAD).status in (types.HEALTH_STATUS_FLAGGED, types.HEALTH_STATUS_BLOCKED),
                 "scoring to flag the number")
        wait_for(lambda: client.get_number(BAD).state in PULLED, "remediation to quarantine the number")
        assert [case.phone_number for case in client.list_cases(phone_number=BAD)] == [BAD]
        for name, replica in replicas.items():
            wait_for(lambda r=replica: refuses(r, solo.id), f"{name} to stop allocating the quarantined number")
            assert set(refuses(replica, solo.id) or {}) & {"QUARANTINED", "RESTING", "FLAGGED"}
        for number in POOL:
            assert client.get_number(number).state == types.LIFECYCLE_STATE_ACTIVE
    finally:
        client.close()
        for replica in replicas.values():
            replica.close()
