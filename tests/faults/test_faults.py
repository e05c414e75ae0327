"""Faults while allocation serves load: nothing acknowledged is lost, no call outlives its deadline, retries never
double count, and the services serve again without a restart (or, killed, as soon as they are back).

The machine's PostgreSQL is shared with everyone, so it is never stopped: a server of the test's own
(nhm_testing.private_postgres) is killed -9 and restarted, and frozen with SIGSTOP; a TcpProxy in front of the
shared one adds latency, resets connections, pauses, blackholes and refuses them. Each test prints its figures
(see docs/reliability.md). NHM_RELIABILITY_SCALE multiplies the load (the long version).
"""

from __future__ import annotations

import time

import psycopg
from faults.support import FaultContext, fault_run, seconds_until_serving_calls
from invariants import load
from sqlalchemy.engine import make_url

from nhm_testing.databases import PostgresProvisioner, owner_url
from nhm_testing.private_postgres import PrivatePostgres
from nhm_testing.processes import wait_serving

SCALE = load.SCALE
pytestmark = load.RELIABILITY_MARKS


def assert_clean(found: dict[str, list[str]]) -> None:
    assert not any(found.values()), {k: v[:5] for k, v in found.items() if v}


def test_kill_9_of_an_allocation_process_mid_load(database_url, upstream, backend):
    def fault(ctx: FaultContext) -> None:
        victim = ctx.processes[0]
        killed = time.monotonic()
        victim.kill()
        time.sleep(1)  # calls routed to it fail over this second
        victim.start()
        ctx.figures["restart to SERVING (s)"] = round(time.monotonic() - killed - 1, 2)
        wait_serving(victim.address, 30)
        ctx.figures["kill to serving calls (s)"] = seconds_until_serving_calls(ctx, victim.address, killed)

    result = fault_run(database_url, upstream, fault, scale=SCALE)
    assert_clean(result.report(f"kill -9 ({backend})"))


def test_every_database_connection_terminated_mid_load(postgres, upstream):
    def fault(ctx: FaultContext) -> None:
        url = make_url(owner_url(ctx.database_url))
        terminated = 0
        with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, dbname="postgres",
                             autocommit=True) as admin:
            for _ in range(3):
                terminated += len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (url.database,)).fetchall())
                began = time.monotonic()
                time.sleep(0.5)
        ctx.figures["connections terminated"] = terminated
        ctx.figures["to serving calls (s)"] = max(
            seconds_until_serving_calls(ctx, target, began) for target in ctx.targets)

    result = fault_run(postgres.fresh, upstream, fault, scale=SCALE)
    assert_clean(result.report("pg_terminate_backend"))


def serving_again(ctx: FaultContext, figure: str) -> None:
    ended = time.monotonic()
    ctx.figures[figure] = max(seconds_until_serving_calls(ctx, target, ended) for target in ctx.targets)


def test_the_database_server_crashed_and_frozen_mid_load(private_postgres: PrivatePostgres, upstream):
    """A real PostgreSQL server killed -9 (postmaster and every backend), started again (crash recovery), then
    frozen 3 s with SIGSTOP: whatever it acknowledged is in the ledger after recovery."""

    def fault(ctx: FaultContext) -> None:
        killed = time.monotonic()
        private_postgres.kill()
        time.sleep(1)
        ctx.figures["server restart with recovery (s)"] = round(private_postgres.start(), 2)
        ctx.figures["kill to serving calls (s)"] = max(
            seconds_until_serving_calls(ctx, target, killed) for target in ctx.targets)
        private_postgres.pause(3)
        serving_again(ctx, "after a 3 s SIGSTOP (s)")

    provisioner = PostgresProvisioner(private_postgres.url)
    result = fault_run(provisioner.fresh, upstream, fault, timeout=2.0, scale=SCALE)
    assert_clean(result.report("database server: kill -9 and restart, SIGSTOP 3 s"))


def test_database_faults_through_a_proxy(postgres, upstream):
    """One load, the database behind a TcpProxy: latency, connection resets, a 3 s pause, a 3 s blackhole and a
    3 s hard stop, one after the other; after each, the seconds until both processes serve calls again."""

    def fault(ctx: FaultContext) -> None:
        proxy = ctx.db_proxy
        proxy.latency = 0.05
        time.sleep(1)
        proxy.latency = 0.0
        for _ in range(2):
            proxy.reset_all()
            time.sleep(0.3)
        serving_again(ctx, "after resets (s)")
        proxy.pause()
        time.sleep(3)
        proxy.resume()
        serving_again(ctx, "after a 3 s pause (s)")
        proxy.blackhole(3)
        time.sleep(3)
        serving_again(ctx, "after a 3 s blackhole (s)")
        proxy.down()
        time.sleep(3)
        proxy.up()
        serving_again(ctx, "after a 3 s hard stop (s)")

    result = fault_run(postgres.fresh, upstream, fault, through_db_proxy=True, timeout=2.0, scale=SCALE)
    assert_clean(result.report("database: latency, resets, pause, blackhole, hard stop"))


def test_network_faults_between_sdk_clients_and_services(postgres, upstream):
    """Through the SDK's Client, whose retry policy resends a call id on UNAVAILABLE: never counted twice."""
    def fault(ctx: FaultContext) -> None:
        proxies = ctx.figures["service proxies"]
        for proxy in proxies:
            proxy.latency = 0.05
        time.sleep(1)
        for proxy in proxies:
            proxy.latency = 0.0
            proxy.reset_all()
        time.sleep(0.5)
        for proxy in proxies:
            proxy.blackhole(2)
        began = time.monotonic()
        time.sleep(2)
        ctx.figures["to serving calls (s)"] = max(
            seconds_until_serving_calls(ctx, proxy.address, began) for proxy in proxies)

    result = fault_run(postgres.fresh, upstream, fault, through_service_proxy=True, sdk=True, timeout=2.0,
                       scale=SCALE)
    assert_clean(result.report("latency, resets and a blackhole between SDK clients and services"))
