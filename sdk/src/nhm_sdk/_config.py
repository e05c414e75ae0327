"""Typed client configuration: where the services are, how to authenticate, TLS, timeouts, retries.

Everything has a safe default; :meth:`ClientConfig.from_env` reads ``NHM_TARGET`` (or one target per service),
``NHM_API_KEY`` and the TLS file paths from the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

SERVICES = ("registry", "scoring", "allocation", "remediation")

# The full gRPC service names, as in the contracts.
SERVICE_NAMES = {
    "registry": "nhm.registry.v1.RegistryService",
    "scoring": "nhm.scoring.v1.ScoringService",
    "allocation": "nhm.allocation.v1.AllocationService",
    "remediation": "nhm.remediation.v1.RemediationService",
}

# The services that keep an audit trail (nhm.audit.v1.AuditService on their own port): allocation owns no
# configuration and keeps none.
AUDITED_SERVICES = ("registry", "scoring", "remediation")
AUDIT_SERVICE_NAME = "nhm.audit.v1.AuditService"

# Where `make run` puts each service (python -m nhm_platform.devstack, base port 50051).
DEV_TARGETS = {name: f"localhost:{50051 + offset}" for offset, name in enumerate(SERVICES)}


@dataclass(frozen=True)
class TlsConfig:
    """Transport security. ``TlsConfig()`` verifies servers against the system roots.

    ca_file: PEM bundle to verify servers with instead of the system roots.
    cert_file/key_file: a client certificate and its key, for servers that require mutual TLS.
    server_name: overrides the name checked in the server's certificate (e.g. when dialling an IP).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("TlsConfig: cert_file and key_file go together (mutual TLS)")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of idempotent calls, done by gRPC itself from the channel's service config.

    UNAVAILABLE is retried (the server could not be reached or shed the call); gRPC waits a random time
    up to min(initial_backoff * multiplier^(n-1), max_backoff) between attempts (full jitter), and stops after
    max_attempts (gRPC caps it at 5) or at the call's deadline, whichever comes first. Every write carries a
    request id the SDK generates, so a retried write is applied once.

    wait_out_rate_limits: a bulk or ingest call (batch creates and assignments, outcome, complaint and
    reputation reports) that the server refuses with RESOURCE_EXHAUSTED because the tenant is over its rate
    limit is tried again after exactly the wait the server names (its RetryInfo, sent to gRPC as server
    pushback), within the same max_attempts and deadline; a wait that would outlast the deadline is not
    waited, and the call raises :class:`~nhm_sdk.ResourceExhaustedError` with ``retry_after`` at once.
    buffer_bytes: the largest request gRPC keeps to send again; a larger one is not retried.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    backoff_multiplier: float = 2.0
    # gRPC's retry throttling: retries stop while more than half of maxTokens were spent on failures.
    throttle_max_tokens: int = 100
    throttle_token_ratio: float = 0.1
    wait_out_rate_limits: bool = True
    buffer_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 5:
            raise ValueError("RetryPolicy.max_attempts must be between 1 (no retry) and 5 (gRPC's limit)")
        if self.initial_backoff <= 0 or self.max_backoff <= 0 or self.backoff_multiplier <= 0:
            raise ValueError("RetryPolicy backoffs and multiplier must be positive")
        if self.buffer_bytes < 0:
            raise ValueError("RetryPolicy.buffer_bytes must not be negative")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        return cls(max_attempts=1)


@dataclass(frozen=True)
class KeepaliveConfig:
    """HTTP/2 keepalive pings, so a dead connection is noticed before the next call needs it.

    The servers accept a ping every 10 s at most; the default pings every 30 s when idle.
    """

    time: float = 30.0
    timeout: float = 10.0
    permit_without_calls: bool = True


@dataclass(frozen=True)
class Timeouts:
    """Default deadline per call, in seconds, by service. A call's ``timeout=`` overrides it."""

    allocation: float = 2.0
    registry: float = 10.0
    scoring: float = 10.0
    remediation: float = 10.0
    # Streams (Watch…) have no deadline unless given.
    stream: float | None = None

    def for_service(self, service: str) -> float:
        value: float = getattr(self, service)
        return value


@dataclass(frozen=True)
class ClientConfig:
    """How a :class:`~nhm_sdk.Client` reaches nhm.

    target: one address for every service (an embedded or gateway deployment), e.g. ``"localhost:50051"``
    or ``"dns:///nhm.internal:443"`` (every address the name resolves to is used, round robin).
    registry_target … remediation_target: per-service addresses; each falls back to ``target``.
    api_key: sent as ``authorization: Bearer <key>`` on every call.
    tenant_id: for admin and service keys, the tenant to act for (``x-nhm-tenant-id``).
    tls: None for plain text (local development), or a :class:`TlsConfig`.
    metadata: extra metadata sent on every call (e.g. a tracing header).
    """

    target: str | None = None
    registry_target: str | None = None
    scoring_target: str | None = None
    allocation_target: str | None = None
    remediation_target: str | None = None
    api_key: str | None = None
    tenant_id: str | None = None
    tls: TlsConfig | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
    metadata: Sequence[tuple[str, str]] = ()
    # "round_robin" spreads calls over every address a dns:/// target resolves to; "pick_first" uses one.
    load_balancing: str = "round_robin"
    max_message_bytes: int = 64 * 1024 * 1024
    user_agent: str = "nhm-sdk-python"
    # Extra grpc channel options, appended last (they win).
    channel_options: Sequence[tuple[str, str | int]] = ()

    def target_for(self, service: str) -> str:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        value: str | None = getattr(self, f"{service}_target") or self.target
        if not value:
            raise ValueError(f"no address for the {service} service: set ClientConfig.target or {service}_target")
        return value

    def with_overrides(self, **changes: object) -> ClientConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, credentials_file: str | Path | None = None,
                 **overrides: object) -> ClientConfig:
        """Read the configuration from the environment.

        NHM_TARGET, NHM_REGISTRY_TARGET … NHM_REMEDIATION_TARGET, NHM_API_KEY, NHM_TENANT_ID,
        NHM_TLS (1 for TLS with system roots), NHM_TLS_CA_FILE, NHM_TLS_CERT_FILE, NHM_TLS_KEY_FILE.
        Without any target, the `make run` ports on localhost are used; without a key, the development key
        from ``credentials_file`` (default ``data/dev-credentials.json``) if it exists.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get("NHM_TARGET"):
            values["target"] = env["NHM_TARGET"]
        for service in SERVICES:
            variable = f"NHM_{service.upper()}_TARGET"
            if env.get(variable):
                values[f"{service}_target"] = env[variable]
        if not any(key.endswith("target") for key in values) and not any(
                key.endswith("target") and value for key, value in overrides.items()):
            values.update({f"{service}_target": address for service, address in DEV_TARGETS.items()})
        if env.get("NHM_API_KEY"):
            values["api_key"] = env["NHM_API_KEY"]
        else:
            creds = load_dev_credentials(credentials_file)
            if creds.get("api_key"):
                values["api_key"] = creds["api_key"]
        if env.get("NHM_TENANT_ID"):
            values["tenant_id"] = env["NHM_TENANT_ID"]
        ca, cert, key = env.get("NHM_TLS_CA_FILE"), env.get("NHM_TLS_CERT_FILE"), env.get("NHM_TLS_KEY_FILE")
        if ca or cert or key or env.get("NHM_TLS", "").lower() in ("1", "true", "yes"):
            values["tls"] = TlsConfig(ca_file=ca or None, cert_file=cert or None, key_file=key or None)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def load_dev_credentials(path: str | Path | None = None) -> dict[str, str]:
    """The keys `make run` keeps in data/dev-credentials.json, or {} when there is no such file."""
    candidate = Path(path) if path is not None else Path("data") / "dev-credentials.json"
    try:
        raw = json.loads(candidate.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
