"""Dashboard benchmark: the Numbers page (and the overview) with 100,000 numbers, over HTTP.

    .venv/bin/python benchmarks/bench_dashboard.py [--numbers 100000] [--repeat 20] [--postgres URL] [--no-sqlite]

For each backend (SQLite files in a temporary folder; PostgreSQL when --postgres names a server: the benchmark
creates one database per service next to the one named and drops them afterwards), the four services and the
dashboard each run as their own process, as `make run` starts them (remediation without following the feeds, so no
case is opened while pages are timed). One tenant imports the numbers through the SDK (four area codes, all in
campaign "Main", every tenth also in "West"); reputation observations make 1% Flagged (First Orion: Spam Likely),
4% At Risk (Hiya: Potential Spam) and 0.1% Blocked. Once scoring and allocation have replicated every number, a
signed-in browser session asks for each kind of page --repeat times; the table gives p50 and p99 in milliseconds
and the rows on the page. Figures are printed; the benchmark never fails on a slow result.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http.cookiejar
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_allocation import postgres_databases  # benchmarks/ is on the path when a benchmark runs
from load import percentile

from nhm_platform.database_roles import application_url
from nhm_sdk import Client, ClientConfig

SERVICES = ("registry", "scoring", "allocation", "remediation")
AREA_CODES = ("415", "212", "305", "512")
IMPORT_BATCH = 10_000
OBSERVATION_BATCH = 5_000
TENANT = "bench"


def phone(i: int) -> str:
    """Distinct valid caller IDs over four area codes: +1 <area> <exchange 200-999> <line>."""
    area = AREA_CODES[i % len(AREA_CODES)]
    n = i // len(AREA_CODES)
    return f"+1{area}{200 + n // 10_000:03d}{n % 10_000:04d}"


def label_of(i: int) -> tuple[str, str, str] | None:
    """(source, label, raw label) observed for number i, or None for a clean number."""
    if i % 1000 == 3:
        return ("NOMOROBO", "BLOCKED", "Blocked")
    if i % 100 == 1:
        return ("FIRST_ORION", "SPAM", "Spam Likely")
    if i % 25 == 2:
        return ("HIYA", "MINOR", "Potential Spam")
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the stack, one process per service ----------------------------------------------------------------------------

@contextlib.contextmanager
def stack(database_urls: dict[str, str], data_dir: Path) -> Iterator[tuple[dict[str, str], int, str]]:
    """Start the services and the dashboard; yield (targets, dashboard port, API key)."""
    key = f"nhm_bench_{secrets.token_hex(12)}"
    ports = {name: free_port() for name in SERVICES}
    dashboard_port = free_port()
    env = {**os.environ, "NHM_DATA_DIR": str(data_dir), "NHM_API_KEYS": f"{TENANT}={key}",
           "NHM_SERVICE_KEY": f"nhm_bench_service_{secrets.token_hex(12)}", "NHM_LOG_FORMAT": "json",
           "NHM_LOG_LEVEL": "warning", "NHM_REMEDIATION_FOLLOW_UPSTREAMS": "false",
           "NHM_DASHBOARD_PORT": str(dashboard_port), "NHM_DASHBOARD_SESSION_SECRET": secrets.token_hex(16)}
    for name, port in ports.items():
        env[f"NHM_{name.upper()}_PORT"] = str(port)
        env[f"NHM_{name.upper()}_TARGET"] = f"127.0.0.1:{port}"
        if name in database_urls:
            env[f"NHM_{name.upper()}_MIGRATION_DATABASE_URL"] = database_urls[name]
            env[f"NHM_{name.upper()}_DATABASE_URL"] = application_url(database_urls[name])
    procs: list[subprocess.Popen[str]] = []
    try:
        for name in SERVICES:
            proc = subprocess.Popen([sys.executable, "-m", f"nhm_{name}"], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            procs.append(proc)
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith(f"NHM_SERVING {name}"):
                raise RuntimeError(f"{name} did not start: {line!r}")
        procs.append(subprocess.Popen([sys.executable, "-m", "nhm_dashboard"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: http_ok(dashboard_port), "the dashboard to serve", 60)
        yield {f"{name}_target": f"127.0.0.1:{port}" for name, port in ports.items()}, dashboard_port, key
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def wait_until(probe: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(1)


# --- seeding through the SDK ---------------------------------------------------------------------------------------

def seed(client: Client, count: int) -> tuple[str, str]:
    """Import the numbers, put every tenth in West, report the labels; return (main, west) campaign ids."""
    main = client.create_campaign("Main").id
    west = client.create_campaign("West").id
    for first in range(0, count, IMPORT_BATCH):
        batch = range(first, min(count, first + IMPORT_BATCH))
        client.import_numbers([phone(i) for i in batch], campaign_ids=[main], timeout=600)
        client.assign_numbers(west, [phone(i) for i in batch if i % 10 == 0], timeout=600)
    # Scoring rejects observations of numbers its registry feed has not brought yet.
    wait_until(lambda: client.list_health(page_size=1).first_response.counts.total == count,
               "scoring to know every number", 3600)
    now = datetime.now(UTC)
    observations = []
    for i in range(count):
        if found := label_of(i):
            source, label, raw = found
            observations.append({"phone_number": phone(i), "source": source, "label": label, "raw_label": raw,
                                 "observe_time": now})
    for first in range(0, len(observations), OBSERVATION_BATCH):
        batch = observations[first:first + OBSERVATION_BATCH]
        summary = client.report_reputation_observations(batch, timeout=600)
        assert summary.accepted == len(batch), summary
    return main, west


def expected_counts(count: int) -> tuple[int, int, int]:
    """(at risk, flagged, blocked) the labels should give."""
    kinds = [label_of(i) for i in range(count)]
    return (sum(1 for k in kinds if k and k[1] == "MINOR"), sum(1 for k in kinds if k and k[1] == "SPAM"),
            sum(1 for k in kinds if k and k[1] == "BLOCKED"))


def replicated(client: Client, count: int, main: str) -> bool:
    counts = client.list_health(page_size=1).first_response.counts
    at_risk, flagged, blocked = expected_counts(count)
    return (counts.total == count and (counts.at_risk, counts.flagged, counts.blocked) == (at_risk, flagged, blocked)
            and client.get_capacity_plan(main, timeout=120).total.numbers_total == count)


def deep_token(client: Client, depth: int, **filters: Any) -> str:
    """The page token after ``depth`` numbers of a health listing, found 1,000 at a time."""
    token = ""
    for _ in range(max(1, depth // 1000)):
        token = client.list_health(page_size=1000, page_token=token, **filters).first_page.next_page_token
    return token


# --- the browser ---------------------------------------------------------------------------------------------------

class Browser:
    """A signed-in session: cookies kept, pages fetched over HTTP."""

    def __init__(self, port: int, key: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, "no CSRF token on the login form"
        body = urllib.parse.urlencode({"api_key": key, "csrf_token": html.unescape(token.group(1))}).encode()
        with self._opener.open(self.base + "/login?next=/numbers", data=body, timeout=60) as reply:
            assert "/login" not in reply.url, "sign-in failed"

    def get(self, path: str) -> str:
        with self._opener.open(self.base + path, timeout=120) as reply:
            return str(reply.read().decode())


def time_page(browser: Browser, path: str, repeat: int) -> str:
    """p50/p99 and rows of one kind of page, or the error it answers with."""
    samples = []
    page = ""
    for attempt in range(repeat + 1):  # the first request warms up
        started = time.perf_counter()
        try:
            page = browser.get(path)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} after {(time.perf_counter() - started) * 1000:.0f} ms"
        if attempt:
            samples.append((time.perf_counter() - started) * 1000)
    rows = page.count("<tr data-phone=")
    return f"p50 {statistics.median(samples):7.1f} ms  p99 {percentile(samples, 0.99):7.1f} ms  rows {rows}"


def timed_ms(call: Callable[[], object]) -> str:
    started = time.perf_counter()
    call()
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


def run_backend(backend: str, database_urls: dict[str, str], count: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="nhm-bench-dashboard-") as folder, \
            stack(database_urls, Path(folder)) as (targets, port, key), \
            Client(ClientConfig(api_key=key, **targets)) as client:
        started = time.perf_counter()
        main, west = seed(client, count)
        seeded = time.perf_counter() - started
        wait_until(lambda: replicated(client, count, main), "scoring and allocation to replicate the numbers", 3600)
        print(f"{backend:<11} {'seed through the SDK':<44} {count:,} numbers in {seeded:.0f} s; "
              f"replicated after {time.perf_counter() - started:.0f} s", flush=True)
        q = urllib.parse.quote
        deep = int(count * 0.9)
        pages = {
            "first page": "/numbers",
            "page 90% deep (token)": f"/numbers?page={q(deep_token(client, deep))}",
            "status At Risk": "/numbers?status=at-risk",
            "status At Risk, page 2": "/numbers?status=at-risk&page="
                                      + q(client.list_health(statuses="AT_RISK", page_size=50)
                                          .first_page.next_page_token),
            "status Flagged": "/numbers?status=flagged",
            "campaign West": f"/numbers?campaign={west}",
            "area code 305": "/numbers?area_code=305",
            "carrier First Orion": "/numbers?carrier=first_orion",
            "search by number": f"/numbers?q={q(phone(deep)[:-2])}",
            "search, no match": f"/numbers?q={q('+1999')}",
            "sorted by state (registry)": "/numbers?sort=state",
            "newest first (registry)": "/numbers?sort=newest",
            "overview": "/",
        }
        browser = Browser(port, key)
        for what, path in pages.items():
            print(f"{backend:<11} {what:<44} {time_page(browser, path, repeat)}", flush=True)
        # What the overview reads, call by call through the SDK (usage of West only: reading all of Main's pages
        # takes minutes at 100,000 numbers, as each page of GetCampaignUsage recounts the whole campaign).
        calls: dict[str, Callable[[], object]] = {
            "SDK: usage of every number in West": lambda: client.get_campaign_usage(west, page_size=1000,
                                                                                    timeout=600),
            "SDK: every At Risk/Flagged/Blocked health": lambda: client.list_health(
                statuses=["AT_RISK", "FLAGGED", "BLOCKED"], page_size=1000, timeout=600).to_list(),
            "SDK: status counts": lambda: client.list_health(page_size=1).first_response,
            "SDK: weekly report": lambda: client.weekly_report(timeout=600),
        }
        for what, call in calls.items():
            print(f"{backend:<11} {what:<44} {timed_ms(call)}", flush=True)


def stop(*_: object) -> None:
    """SIGTERM: leave through the finally blocks (services stopped, databases dropped), deaf to a second one."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=100_000, help="numbers of the benchmark tenant")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page kind")
    parser.add_argument("--postgres", default="", help="postgresql+psycopg:// URL (sibling databases are used)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, stop)
    print(f"{'backend':<11} {'page':<44} figure", flush=True)
    if not args.no_sqlite:
        run_backend("sqlite", {}, args.numbers, args.repeat)
    if args.postgres:
        with postgres_databases(args.postgres, SERVICES, "nhm_bench_dashboard") as urls:
            run_backend("postgresql", urls, args.numbers, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
