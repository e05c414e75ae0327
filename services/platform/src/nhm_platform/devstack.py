"""`make run` and `make up-local`: every service on localhost, each its own OS process, in the foreground.

Migrations run first, one `python -m nhm_<service> migrate` per service (as the production migration step
does), then every service starts on fixed ports from --base-port, and the dashboard (when its package is
installed) on --dashboard-port. Databases are SQLite files under the data folder, or, with --postgres-url,
one PostgreSQL database per service on that server (`make up-local`). With --allocation-replicas 2 two
allocation processes share one port, one on 127.0.0.1 and one on ::1: gRPC's resolver gives both addresses
for `localhost`, so clients reach them through `dns:///localhost:<port>` with round robin, as in a cluster.
On PostgreSQL migrations run as the --postgres-url user (the tables' owner) and the services connect as the
application role (database_app_role, created here with a generated password if the server has none yet), which
row-level security holds to one tenant's rows.
Development keys are made once and kept in <data>/dev-credentials.json so they survive restarts.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from nhm_platform.auth import generate_key
from nhm_platform.database_roles import as_role, ensure_login_role
from nhm_platform.server import listen_address
from nhm_platform.settings import ServerSettings

SERVICES = ("registry", "scoring", "allocation", "remediation")
DEV_TENANT = "dev"
# Loopback addresses the allocation replicas listen on, all on the same port: `localhost` resolves to both.
REPLICA_HOSTS = ("127.0.0.1", "::1")
APP_ROLE = ServerSettings.database_app_role
# Secrets dev-credentials.json keeps (an older file gains the ones it lacks).
_GENERATED = ("api_key", "admin_key", "service_key", "dashboard_session_secret", "database_app_password")
# Database name prefix when --postgres-url names none.
DEFAULT_DATABASE_PREFIX = "nhm"


@dataclass(frozen=True)
class Process:
    """One server process: `label` is the service name, or `allocation-<n>` for a replica."""

    label: str
    service: str
    host: str
    port: int
    metrics_port: int = -1

    @property
    def address(self) -> str:
        return listen_address(self.host, self.port)

    @property
    def metrics_url(self) -> str:
        return f"http://{listen_address(self.host, self.metrics_port)}/metrics"


def plan(base_port: int, allocation_replicas: int, metrics_base_port: int = -1) -> list[Process]:
    """The server processes to start, in start order; metrics ports count up from metrics_base_port."""
    if not 1 <= allocation_replicas <= len(REPLICA_HOSTS):
        raise ValueError(f"--allocation-replicas must be between 1 and {len(REPLICA_HOSTS)} on one machine "
                         f"(one replica per loopback address that localhost resolves to)")
    processes: list[Process] = []
    for offset, service in enumerate(SERVICES):
        port = base_port + offset
        if service == "allocation" and allocation_replicas > 1:
            processes.extend(Process(f"allocation-{n + 1}", service, REPLICA_HOSTS[n], port)
                             for n in range(allocation_replicas))
        else:
            processes.append(Process(service, service, REPLICA_HOSTS[0], port))
    if metrics_base_port >= 0:
        processes = [Process(p.label, p.service, p.host, p.port, metrics_base_port + n)
                     for n, p in enumerate(processes)]
    return processes


def client_targets(base_port: int, allocation_replicas: int) -> dict[str, str]:
    """Where clients reach each service: allocation replicas through dns:/// (round robin in the SDK)."""
    targets = {name: f"localhost:{base_port + offset}" for offset, name in enumerate(SERVICES)}
    if allocation_replicas > 1:
        targets["allocation"] = f"dns:///{targets['allocation']}"
    return targets


def load_credentials(data_dir: Path) -> dict[str, str]:
    """The development keys (and the application role's database password), made once and kept."""
    path = data_dir / "dev-credentials.json"
    stored = dict(json.loads(path.read_text())) if path.exists() else {}
    creds = {"tenant_id": DEV_TENANT, **{name: generate_key() for name in _GENERATED}, **stored}
    if creds != stored:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(creds, indent=2))
        path.chmod(0o600)
    return creds


def postgres_databases(server_url: str) -> dict[str, str]:
    """{service: URL} of each service's database on the server named by server_url: <database>_<service>
    (nhm_registry … when the URL names no database). Databases that do not exist yet are created."""
    base = make_url(server_url)
    prefix = base.database or DEFAULT_DATABASE_PREFIX
    names = {service: f"{prefix}_{service}" for service in SERVICES}
    create_missing_databases(base, list(names.values()))
    return {service: base.set(database=name).render_as_string(hide_password=False)
            for service, name in names.items()}


def create_missing_databases(base: URL, names: list[str]) -> None:
    with psycopg.connect(host=base.host or "127.0.0.1", port=base.port or 5432, user=base.username,
                         password=base.password, dbname="postgres", autocommit=True) as admin:
        existing = {row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                                    [names])}
        for name in names:
            if name not in existing:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def service_env(data_dir: Path, targets: dict[str, str], creds: dict[str, str],
                database_urls: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every process shares (each process adds its host, port and metrics port)."""
    env = dict(os.environ)
    env.update({
        "NHM_DATA_DIR": str(data_dir),
        "NHM_API_KEYS": f"{creds['tenant_id']}={creds['api_key']}",
        "NHM_ADMIN_KEYS": creds["admin_key"],
        "NHM_SERVICE_KEY": creds["service_key"],
        "NHM_LOG_FORMAT": env.get("NHM_LOG_FORMAT", "console"),
        # Migrations ran before the servers start.
        "NHM_MIGRATE_ON_START": "false",
        "NHM_DASHBOARD_SESSION_SECRET": creds["dashboard_session_secret"],
    })
    for name, target in targets.items():
        env[f"NHM_{name.upper()}_TARGET"] = target
    for name, url in (database_urls or {}).items():  # the owner's: migrations; the service: the app role
        env[f"NHM_{name.upper()}_MIGRATION_DATABASE_URL"] = url
        env[f"NHM_{name.upper()}_DATABASE_URL"] = as_role(url, APP_ROLE, creds["database_app_password"])
    return env


def process_env(env: dict[str, str], process: Process) -> dict[str, str]:
    prefix = f"NHM_{process.service.upper()}_"
    return {**env, f"{prefix}HOST": process.host, f"{prefix}PORT": str(process.port),
            f"{prefix}METRICS_PORT": str(process.metrics_port)}


def migrate_all(env: dict[str, str]) -> bool:
    """Run every service's migrations (side by side, each its own process); True when all succeeded."""
    runs = {name: subprocess.Popen([sys.executable, "-m", f"nhm_{name}", "migrate"], env=env) for name in SERVICES}
    failed = [name for name, run in runs.items() if run.wait() != 0]
    for name in failed:
        print(f"nhm: migrating {name} failed; see its log above", file=sys.stderr)
    return not failed


def dashboard_installed() -> bool:
    return importlib.util.find_spec("nhm_dashboard") is not None


def wait_http_ok(port: int, path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("localhost", port, timeout=1)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    return False


def wait_serving(address: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                time.sleep(0.1)
    return False


def print_banner(processes: list[Process], targets: dict[str, str], dashboard_port: int | None,
                 databases: str, creds: dict[str, str], data_dir: Path) -> None:
    print("\nnhm is running. Endpoints (gRPC, plain text on localhost):")
    for name in SERVICES:
        replicas = [p for p in processes if p.service == name]
        note = ""
        if len(replicas) > 1:
            note = (f"  ({len(replicas)} replicas: {', '.join(p.address for p in replicas)}; "
                    f"the SDK balances round robin)")
        print(f"  {name:<12} {targets[name]}{note}")
    if dashboard_port is not None:
        print(f"  {'dashboard':<12} http://localhost:{dashboard_port}  (sign in with the API key below)")
    if any(p.metrics_port >= 0 for p in processes):
        print("Metrics:")
        for process in processes:
            print(f"  {process.label:<12} {process.metrics_url}")
    print(f"Databases: {databases}")
    print(f"\nDevelopment tenant: {creds['tenant_id']}")
    print(f"API key:            {creds['api_key']}")
    print(f"(keys are kept in {data_dir / 'dev-credentials.json'})")
    print("Press Ctrl-C to stop.\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--base-port", type=int, default=50051)
    parser.add_argument("--dashboard-port", type=int, default=8080,
                        help="HTTP port of the dashboard (0: do not start it)")
    parser.add_argument("--postgres-url", default="",
                        help="PostgreSQL server for every service's database instead of SQLite: one database per "
                             "service named <database>_<service> (nhm_registry … by default), created if missing")
    parser.add_argument("--allocation-replicas", type=int, default=1, choices=range(1, len(REPLICA_HOSTS) + 1),
                        help="allocation processes (2: on 127.0.0.1 and ::1, same port; needs --postgres-url)")
    parser.add_argument("--metrics-base-port", type=int, default=-1,
                        help="serve Prometheus metrics from each process on this port and the next ones (-1: off)")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.allocation_replicas > 1 and not args.postgres_url:
        parser.error("--allocation-replicas above 1 needs --postgres-url (SQLite is for one process per service)")
    if args.postgres_url and not args.postgres_url.startswith("postgresql"):
        parser.error(f"--postgres-url must be a postgresql+psycopg:// URL, not {args.postgres_url!r}")
    data_dir = args.data_dir.resolve()
    creds = load_credentials(data_dir)
    database_urls = postgres_databases(args.postgres_url) if args.postgres_url else None
    if args.postgres_url:
        ensure_login_role(args.postgres_url, APP_ROLE, creds["database_app_password"])
    databases = (f"PostgreSQL, {', '.join(make_url(u).database or '' for u in database_urls.values())}"
                 if database_urls else f"SQLite under {data_dir}")
    processes = plan(args.base_port, args.allocation_replicas, args.metrics_base_port)
    targets = client_targets(args.base_port, args.allocation_replicas)
    env = service_env(data_dir, targets, creds, database_urls)
    if not migrate_all(env):
        return 1
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = threading.Event()

    def stop_all(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    for process in processes:
        procs[process.label] = subprocess.Popen([sys.executable, "-m", f"nhm_{process.service}"],
                                                env=process_env(env, process))
    with_dashboard = args.dashboard_port > 0 and dashboard_installed()
    if with_dashboard:
        procs["dashboard"] = subprocess.Popen([sys.executable, "-m", "nhm_dashboard"],
                                              env={**env, "NHM_DASHBOARD_PORT": str(args.dashboard_port)})
    status = 0
    try:
        for process in processes:
            if not wait_serving(process.address, args.start_timeout):
                print(f"nhm: {process.label} did not start; see its log above", file=sys.stderr)
                return 1
        if with_dashboard and not wait_http_ok(args.dashboard_port, "/healthz", args.start_timeout):
            print("nhm: dashboard did not start; see its log above", file=sys.stderr)
            return 1
        print_banner(processes, targets, args.dashboard_port if with_dashboard else None, databases, creds,
                     data_dir)
        while not stopping.is_set():
            for label, proc in procs.items():
                if proc.poll() is not None:
                    print(f"nhm: {label} exited with {proc.returncode}; stopping", file=sys.stderr)
                    status = 1
                    stopping.set()
            stopping.wait(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return status


if __name__ == "__main__":
    sys.exit(main())
