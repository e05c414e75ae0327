"""The dashboard's settings, read once from NHM_DASHBOARD_<FIELD> (falling back to NHM_<FIELD>)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nhm_platform.settings import load_settings

HOUR = 3600.0


@dataclass(frozen=True)
class DashboardSettings:
    # Interface to listen on.
    host: str = "127.0.0.1"
    # HTTP port.
    port: int = 8080
    # Where the services are (gRPC). The defaults are `make run`'s ports.
    registry_target: str = "localhost:50051"
    scoring_target: str = "localhost:50052"
    allocation_target: str = "localhost:50053"
    remediation_target: str = "localhost:50054"
    # Key that signs session ids (HMAC-SHA256). Empty: a random key per process. Sessions (and the API keys
    # they hold) live in this process's memory only, so they end when it restarts.
    session_secret: str = ""
    # Seconds a login lasts.
    session_lifetime: float = 8 * HOUR
    # Seconds a session may sit unused before it ends.
    session_idle_timeout: float = 1 * HOUR
    # Sessions kept at once; the oldest end first beyond it.
    max_sessions: int = 10_000
    # Rows per page on the Numbers page (the services cap pages at 1000).
    page_size: int = 50
    # Seconds the Numbers and number pages reuse a key's campaign names (listing campaigns counts each one's
    # numbers: about 0.2 s at 100,000 numbers). A new or renamed campaign shows after at most this long; 0: always
    # list them afresh.
    campaign_names_ttl: float = 30.0
    # Calls made at once to fill one page (its batch gets; the overview's calls per campaign).
    fanout_workers: int = 8
    # Numbers named in one batch get (BatchGetNumbers, BatchGetHealth, BatchGetNumberUsage); at most the services'
    # max_batch_get (1,000 by default). Longer lists are read in slices of this size.
    batch_get_size: int = 1000
    # Deadline of each call to a service, in seconds.
    rpc_timeout: float = 10.0
    # Status changes drawn on a number's health chart.
    history_limit: int = 200
    # Days of calls drawn on a number's usage chart (the scoring service allows up to 90).
    activity_days: int = 30
    # Overdue tasks and short campaigns listed on the overview.
    overview_list_limit: int = 20
    # Cases read per stage on the Remediation page.
    remediation_case_limit: int = 500
    # TLS for the dashboard itself (PEM files). With them the session cookie is also marked Secure.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Trust X-Forwarded-Proto/-Host/-For from one reverse proxy in front (TLS terminated there), so the
    # session cookie is marked Secure. Leave off when clients reach the dashboard directly.
    trust_proxy_headers: bool = False
    # TLS towards the services: the CA that signed their certificates (empty: plain text), and a client
    # certificate and key for services that require mutual TLS.
    upstream_ca_file: str = ""
    upstream_cert_file: str = ""
    upstream_key_file: str = ""
    # "json", "console", or "auto" (console on a terminal, JSON otherwise).
    log_format: str = "auto"
    # Lowest level logged: debug, info, warning, error.
    log_level: str = "info"


def load(**overrides: Any) -> DashboardSettings:
    """Settings from the environment; keyword overrides win (tests use them)."""
    return load_settings(DashboardSettings, "dashboard", **overrides)  # type: ignore[type-var]
