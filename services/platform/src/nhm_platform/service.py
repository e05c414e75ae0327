"""The composition root every service shares: settings → database → migrations → service → server.

A service describes itself with a :class:`ServiceSpec`; ``python -m nhm_<service>`` runs
:func:`main` (``serve``, the default, or ``migrate``), and tests call :func:`start_service` with port 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from nhm_platform.audit import AuditLog
from nhm_platform.audit_service import with_audit
from nhm_platform.auth import ChainedKeyResolver, KeyResolver, StaticKeyResolver
from nhm_platform.bulk_lane import LANE_OVERRIDES, LaneProcess, become_lane, lane_socket
from nhm_platform.clock import Clock, SystemClock
from nhm_platform.db import Database
from nhm_platform.logs import configure_logging
from nhm_platform.metrics import serve_metrics
from nhm_platform.migrations import upgrade
from nhm_platform.server import (
    RunningServer,
    ServiceRegistration,
    create_server,
    listen_address,
    serve_until_signalled,
)
from nhm_platform.settings import ServerSettings, load_settings

S = TypeVar("S", bound=ServerSettings)
_log = structlog.get_logger("nhm.service")


@dataclass(frozen=True)
class ServiceContext(Generic[S]):
    """What a service's builder gets: its settings, its database, the clock and the static keys."""

    name: str
    settings: S
    db: Database
    clock: Clock
    static_keys: StaticKeyResolver


@dataclass(frozen=True)
class BuiltService:
    registration: ServiceRegistration
    # Resolvers for keys the service knows beyond the static ones (the registry's table, or its replica).
    key_resolvers: Sequence[KeyResolver] = ()
    # Called once the server is serving (start feed followers, schedulers).
    on_start: Sequence[Callable[[], None]] = ()
    # The service's audit trail, served as nhm.audit.v1.AuditService on its port.
    audit: AuditLog | None = None


@dataclass(frozen=True)
class ServiceSpec(Generic[S]):
    name: str
    settings_class: type[S]
    migrations_dir: Path
    build: Callable[[ServiceContext[S]], BuiltService]

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"

    def load_settings(self, **overrides: object) -> S:
        return load_settings(self.settings_class, self.name, **overrides)


def open_database(spec: ServiceSpec[S], settings: S) -> Database:
    url = settings.resolved_database_url(spec.name)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database(url, pool_size=settings.db_pool_size, timeout=settings.db_timeout,
                  sqlite_synchronous=settings.sqlite_synchronous)
    try:
        db.check_row_security_applies()
    except BaseException:
        db.dispose()
        raise
    return db


def migrate(spec: ServiceSpec[S], settings: S) -> None:
    url = settings.resolved_migration_database_url(spec.name)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url, spec.migrations_dir, spec.version_table, app_role=settings.database_app_role)


def start_service(spec: ServiceSpec[S], settings: S, clock: Clock | None = None, *,
                  lane_socket: str | None = None) -> tuple[RunningServer, int]:
    """Migrate (if configured), build and start the service; returns the running server and its port.

    With settings.bulk_lane, a service with bulk and ingest methods also starts its lane process and forwards
    them to it (bulk_lane.py). lane_socket: this process is that lane: it serves on this Unix socket, without
    the service's background work (the serving process runs it)."""
    if settings.migrate_on_start:
        migrate(spec, settings)
    db = open_database(spec, settings)
    static = StaticKeyResolver.from_settings(settings.api_keys, settings.admin_keys, settings.service_key)
    context = ServiceContext(spec.name, settings, db, clock or SystemClock(), static)
    built = spec.build(context)
    built.registration.on_stop.append(db.dispose)
    registration = built.registration
    if built.audit is not None:
        registration = with_audit(registration, built.audit, db)
    resolver = ChainedKeyResolver([static, *built.key_resolvers])
    lane = None
    if settings.bulk_lane and registration.rate_limited_methods and not lane_socket:
        lane = LaneProcess(spec.name, settings).start()
        registration.on_stop.append(lane.stop)
    try:
        running, port = create_server(settings, spec.name, registration, resolver,
                                      bulk_lane=lane.target if lane else None, unix_socket=lane_socket)
    except BaseException:
        if lane is not None:
            lane.stop()
        raise
    for hook in () if lane_socket else built.on_start:
        hook()
    return running, port


def main(spec: ServiceSpec[S], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"nhm-{spec.name}", description=f"nhm's {spec.name} service.")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve",
                        help="serve (default): run the gRPC server; migrate: upgrade the database and exit")
    args = parser.parse_args(argv)
    socket_path = lane_socket()
    settings = spec.load_settings(**LANE_OVERRIDES) if socket_path else spec.load_settings()
    if socket_path:
        become_lane(settings.bulk_lane_niceness)
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "migrate":
        migrate(spec, settings)
        _log.info("service.migrated", service=spec.name)
        return 0
    if settings.workers > 1 and WORKER_INDEX_VARIABLE not in os.environ:
        return supervise_workers(spec, settings)
    running, port = start_service(spec, settings, lane_socket=socket_path)
    metrics_port = serve_metrics(settings.metrics_port, settings.host)
    _log.info("service.serving", service=spec.name, address=listen_address(settings.host, port), pid=os.getpid(),
              metrics_port=metrics_port if metrics_port >= 0 else None)
    # A machine-readable line for launchers and tests that start the process with port 0.
    print(f"NHM_SERVING {spec.name} {port}", flush=True)
    serve_until_signalled(running, settings.grace_period)
    return 0


WORKER_INDEX_VARIABLE = "NHM_WORKER_INDEX"


def supervise_workers(spec: ServiceSpec[S], settings: S) -> int:
    """Run settings.workers server processes on one port; forward SIGTERM/SIGINT; exit when they all have."""
    if settings.migrate_on_start:
        migrate(spec, settings)
    with contextlib.ExitStack() as reservation:
        port = settings.port or reservation.enter_context(reserved_port(settings.host))
        children = _start_workers(spec, settings, port)

        def forward(signum: int, _frame: object) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for child in children:
            line = child.stdout.readline() if child.stdout else ""
            if not line.startswith("NHM_SERVING"):
                forward(signal.SIGTERM, None)
                return 1
    _log.info("service.serving", service=spec.name, address=listen_address(settings.host, port),
              workers=len(children))
    print(f"NHM_SERVING {spec.name} {port}", flush=True)
    codes = [child.wait() for child in children]
    return 0 if all(code == 0 for code in codes) else 1


def _start_workers(spec: ServiceSpec[S], settings: S, port: int) -> list[subprocess.Popen[str]]:
    prefix = f"NHM_{spec.name.upper()}_"
    children = []
    for index in range(settings.workers):
        env = dict(os.environ)
        env.update({WORKER_INDEX_VARIABLE: str(index), f"{prefix}PORT": str(port),
                    f"{prefix}MIGRATE_ON_START": "false"})
        if settings.metrics_port > 0:
            env[f"{prefix}METRICS_PORT"] = str(settings.metrics_port + index)
        children.append(subprocess.Popen([sys.executable, "-m", f"nhm_{spec.name}", "serve"], env=env,
                                         stdout=subprocess.PIPE, text=True))
    return children


@contextlib.contextmanager
def reserved_port(host: str) -> Iterator[int]:
    """A free port for workers started with port 0, held until they have bound it. The reservation is bound with
    SO_REUSEPORT, as gRPC binds its own listeners, so the workers can share it while nothing else can take it in
    between (a port probed and closed could become another listener's, or an outgoing connection's source port).
    Bound but not listening, it is never handed a connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as reservation:
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind((host.strip("[]"), 0))
        yield int(reservation.getsockname()[1])


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a service: python -m nhm_registry (or nhm_scoring, nhm_allocation, nhm_remediation)")
