"""Settings read once from the environment into a typed, frozen object.

A field ``port`` of the registry service is read from ``NHM_REGISTRY_PORT``, falling back to the shared
``NHM_PORT``, then to the field's default. Services extend :class:`ServerSettings` with their own fields.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar


class SettingsError(ValueError):
    """A variable holds a value its field cannot take."""


@dataclass(frozen=True)
class ServerSettings:
    # Interface to listen on.
    host: str = "127.0.0.1"
    # Port to listen on; 0 picks a free one (the server reports it).
    port: int = 0
    # SQLAlchemy URL. Empty: SQLite file <data_dir>/<service>.db. Production: postgresql+psycopg://...
    database_url: str = ""
    # SQLAlchemy URL migrations run with (`migrate`, migrate_on_start): the tables' owner. Empty: database_url.
    # On PostgreSQL the service itself connects (database_url) as database_app_role, which must not own the
    # tables, be a superuser or bypass row-level security (docs/operations.md#database-roles).
    migration_database_url: str = ""
    # PostgreSQL role the service connects as; every migration grants it what the service needs (and no
    # more) on the service's tables. Create it first: CREATE ROLE nhm_app LOGIN NOSUPERUSER NOBYPASSRLS.
    database_app_role: str = "nhm_app"
    # Folder for embedded SQLite databases.
    data_dir: str = "data"
    # Run migrations when the server starts (else run `python -m nhm_<service> migrate` first).
    migrate_on_start: bool = True
    # Seconds that calls in flight get to finish after SIGTERM.
    grace_period: float = 10.0
    # Server processes sharing the port (SO_REUSEPORT), so more than one core serves RPCs. Each process runs
    # the service's background work too (feed followers, schedulers), which is safe with replicas.
    workers: int = 1
    # Threads serving RPCs in each process.
    max_workers: int = 32
    # RPCs handled at once; more are refused at once with RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 256
    # Largest request or response message, in bytes; a larger request is refused with RESOURCE_EXHAUSTED.
    max_message_bytes: int = 16 * 1024 * 1024
    # Entries of all a request's lists and maps together (numbers, campaign ids, labels, events ...); a request
    # with more is refused with INVALID_ARGUMENT before any of it is read (within max_message_bytes a request can
    # carry millions of empty entries, seconds of server time to walk). A 10,000-number import with a few campaign
    # ids, registrations and labels each fits (9 entries a number). 0: no limit.
    max_request_entries: int = 100_000
    # Calls a second each tenant may make to this server's bulk and ingest methods (imports, batch creates and
    # assignments, outcome, complaint and reputation reports); more are refused at once with RESOURCE_EXHAUSTED
    # and a retry delay. Service keys are not limited. 0 turns the limit off.
    tenant_bulk_rate: float = 100.0
    # Calls above tenant_bulk_rate a tenant may make in a burst (what it saved up while quiet).
    tenant_bulk_burst: int = 200
    # Items a second each tenant may send to this server's bulk and ingest methods: a call draws one per entry of
    # its longest list (numbers imported or assigned, outcomes, complaints, observations; a CSV import counts
    # one). A call is refused while the tenant's budget is overdrawn, with a retry delay; a client stream is
    # slowed down instead; the refusal names the wait in RetryInfo and in gRPC's server pushback, which the SDK
    # waits out on its own. 0 (the embedded default, usually one tenant) turns it off; docker-compose.yml and
    # deploy/k8s set 1,000, with which a flooding tenant raised another's p99 by 18% on PostgreSQL
    # (docs/reliability.md, "A flooding tenant").
    tenant_bulk_item_rate: float = 0.0
    # Items above tenant_bulk_item_rate a tenant may send in a burst (one import of that many numbers at once).
    tenant_bulk_item_burst: int = 5000
    # Bulk and ingest calls of one tenant running at once in this server process; more are refused at once
    # with RESOURCE_EXHAUSTED (a large import takes seconds, and a rate alone would let one tenant fill the
    # server's threads). 0: no limit. Applies only while tenant_bulk_rate is on.
    tenant_bulk_concurrency: int = 4
    # Serve the bulk and ingest methods (those tenant_bulk_rate limits) from a process of their own at a lower CPU
    # priority (bulk_lane.py), so that imports and event floods do not hold the interpreter lock the short calls
    # need: one 100-number import at a time raised another tenant's p99 from 5 ms to 44 ms in one process.
    # Off: one process does everything (the embedded default and the tests).
    bulk_lane: bool = False
    # Niceness added to the bulk lane process (0-19; higher yields the CPU sooner to the serving process).
    bulk_lane_niceness: int = 19
    # Longest wait, in seconds, before starting again a lane that keeps exiting (the first wait is 0.1 s, doubled
    # each time the lane dies within a minute of starting).
    bulk_lane_restart_max_seconds: float = 5.0
    # Port of the Prometheus /metrics endpoint; -1 turns it off, 0 picks a free one.
    metrics_port: int = -1
    # "json", "console", or "auto" (console on a terminal, JSON otherwise).
    log_format: str = "auto"
    # Lowest level logged: debug, info, warning, error.
    log_level: str = "info"
    # Static tenant keys, "tenant_id=secret" separated by commas (keys created through the API need none).
    api_keys: str = ""
    # Keys with admin rights over every tenant, separated by commas.
    admin_keys: str = ""
    # The key services present to each other (watch every tenant's feed, act as the platform).
    service_key: str = ""
    # Seconds a service keeps the API keys replicated from the registry in memory before reading them again.
    # Its own feed follower's changes apply at once; this bounds how long a key revoked through another
    # process of the service (replicas or workers sharing its database) keeps working here.
    api_key_cache_seconds: float = 1.0
    # Database connection pool size (PostgreSQL and SQLite files; as many again may overflow under load).
    db_pool_size: int = 16
    # Seconds a statement may run before it is cancelled (PostgreSQL) / waits on a lock (SQLite).
    db_timeout: float = 5.0
    # SQLite synchronous mode: FULL survives power loss; NORMAL is faster but may lose the last commits.
    sqlite_synchronous: str = "FULL"
    # TLS for this server: certificate chain (PEM file). Empty: plain text (localhost only).
    tls_cert_file: str = ""
    # Private key of tls_cert_file (PEM).
    tls_key_file: str = ""
    # CA bundle that client certificates must chain to; set it to require mutual TLS.
    tls_client_ca_file: str = ""
    # Client certificates this server serves, comma separated: dns:<subject alt DNS name>, uri:<subject alt URI>
    # (e.g. a SPIFFE id) or cn:<subject common name>; others are refused with PERMISSION_DENIED. Empty: any
    # certificate tls_client_ca_file signed. The service identities are accepted too. Needs tls_client_ca_file.
    tls_client_identities: str = ""
    # Client certificates that may present the service key (same form): the service key over any other
    # connection is refused with PERMISSION_DENIED. Empty: the service key is not bound to a certificate.
    tls_service_identities: str = ""
    # TLS towards upstream services (feeds, registry transitions): the CA that signed their certificates.
    # Empty: plain text.
    upstream_ca_file: str = ""
    # Client certificate this service presents to upstreams that require mutual TLS (PEM).
    upstream_cert_file: str = ""
    # Private key of upstream_cert_file (PEM).
    upstream_key_file: str = ""

    def resolved_database_url(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        path = Path(self.data_dir).resolve() / f"{service}.db"
        return f"sqlite:///{path}"

    def resolved_migration_database_url(self, service: str) -> str:
        return self.migration_database_url or self.resolved_database_url(service)


S = TypeVar("S", bound=ServerSettings)


def env_names(cls: type[ServerSettings], service: str) -> dict[str, str]:
    """Every variable the settings class reads: {variable: field}, service-specific and shared."""
    names: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        names[f"NHM_{service.upper()}_{field.name.upper()}"] = field.name
        names[f"NHM_{field.name.upper()}"] = field.name
    return names


def load_settings(cls: type[S], service: str, environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Build settings from the environment; keyword overrides win (tests use them)."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            continue
        for var in (f"NHM_{service.upper()}_{field.name.upper()}", f"NHM_{field.name.upper()}"):
            if var in env:
                values[field.name] = _parse(var, env[var], hints[field.name])
                break
    values.update(overrides)
    return cls(**values)


def settings_environment(settings: ServerSettings, service: str) -> dict[str, str]:
    """The variables that make load_settings give these settings back (for a process started with them)."""
    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)
    return {f"NHM_{service.upper()}_{field.name.upper()}": shown(getattr(settings, field.name))
            for field in dataclasses.fields(settings)}


def _parse(var: str, raw: str, annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw == "":
            return None
        annotation = args[0]
    try:
        if annotation is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{var}={raw!r}: {exc}") from None
