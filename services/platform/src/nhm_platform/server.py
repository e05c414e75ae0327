"""The gRPC server every service runs: create_server(...) -> (server, port), health, reflection, graceful stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nhm_platform.auth import KeyResolver
from nhm_platform.bulk_lane import LaneForwardInterceptor
from nhm_platform.interceptors import (
    AccessLogInterceptor,
    AuthInterceptor,
    PeerIdentityInterceptor,
    RateLimitInterceptor,
    WellFormedRequestInterceptor,
)
from nhm_platform.peer_identity import PeerPolicy
from nhm_platform.ratelimit import TenantRateLimit
from nhm_platform.settings import ServerSettings

_log = structlog.get_logger("nhm.server")


@dataclass
class ServiceRegistration:
    """What a service adds to the server: its full service names and a function that adds its servicers."""

    service_names: Sequence[str]
    add_to_server: Callable[[grpc.Server], None]
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Called with the server's health servicer once it serves: a service may publish more health entries
    # (e.g. "<service>.replication") and keep them current. Entries set after shutdown began are ignored.
    on_serving: list[Callable[[health.HealthServicer], None]] = field(default_factory=list)
    # Full names ("/package.Service/Method") of the bulk and ingest methods that each tenant may call at most
    # settings.tenant_bulk_rate times a second.
    rate_limited_methods: Sequence[str] = ()


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    registration: ServiceRegistration

    def stop(self, grace: float | None) -> None:
        """NOT_SERVING first, then let calls in flight finish within grace, then release resources."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        for hook in self.registration.on_stop:
            hook()


def listen_address(host: str, port: int) -> str:
    """host:port as gRPC parses it: an IPv6 literal ("::1", "::") goes in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def create_server(settings: ServerSettings, service: str, registration: ServiceRegistration,
                  resolver: KeyResolver, *, bulk_lane: str | None = None,
                  unix_socket: str | None = None) -> tuple[RunningServer, int]:
    """Build and start a server on settings.host:settings.port; returns it and its bound port.

    bulk_lane: the target ("unix:<path>") of the lane process that serves registration.rate_limited_methods
    (bulk_lane.py). unix_socket: serve on this Unix socket instead, in plain text (a lane process)."""
    interceptors = _interceptors(settings, service, registration, resolver, bulk_lane)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=f"{service}-rpc"),
        interceptors=interceptors,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 1),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    registration.add_to_server(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(registration.service_names)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if unix_socket:
        address, credentials = f"unix:{unix_socket}", None
    else:
        address, credentials = listen_address(settings.host, settings.port), server_credentials(settings)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    server.start()
    for name in [*names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    for hook in registration.on_serving:
        hook(health_servicer)
    return RunningServer(server, port, health_servicer, registration), port


def _interceptors(settings: ServerSettings, service: str, registration: ServiceRegistration,
                  resolver: KeyResolver, bulk_lane: str | None) -> list[grpc.ServerInterceptor]:
    interceptors: list[grpc.ServerInterceptor] = [AccessLogInterceptor(service), AuthInterceptor(resolver)]
    peers = PeerPolicy.from_settings(settings.tls_client_identities, settings.tls_service_identities)
    if peers.enabled:
        interceptors.append(PeerIdentityInterceptor(peers))
    if registration.rate_limited_methods and settings.tenant_bulk_rate > 0:
        limit = TenantRateLimit(settings.tenant_bulk_rate, settings.tenant_bulk_burst,
                                settings.tenant_bulk_concurrency, item_rate=settings.tenant_bulk_item_rate,
                                item_burst=settings.tenant_bulk_item_burst)
        # Before the well-formed check: a refused call is not parsed, let alone checked field by field.
        interceptors.append(RateLimitInterceptor(registration.rate_limited_methods, limit))
    if bulk_lane and registration.rate_limited_methods:
        # After authentication and the rate limit, before anything that reads the request: the lane checks it.
        forward = LaneForwardInterceptor(registration.rate_limited_methods, bulk_lane)
        registration.on_stop.append(forward.close)
        interceptors.append(forward)
    interceptors.append(WellFormedRequestInterceptor(settings.max_request_entries))
    return interceptors


def method_names(service_full_name: str, *methods: str) -> list[str]:
    """The full names ("/package.Service/Method") of some of a service's methods."""
    return [f"/{service_full_name}/{method}" for method in methods]


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS from settings (mutual TLS when a client CA is set), or None for plain text."""
    if (settings.tls_client_identities or settings.tls_service_identities) and not settings.tls_client_ca_file:
        raise ValueError("tls_client_identities and tls_service_identities need mutual TLS (tls_client_ca_file)")
    if not settings.tls_cert_file and not settings.tls_key_file:
        if settings.tls_client_ca_file:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    key = Path(settings.tls_key_file).read_bytes()
    chain = Path(settings.tls_cert_file).read_bytes()
    client_ca = Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def serve_until_signalled(running: RunningServer, grace: float) -> None:
    """Block until SIGTERM or SIGINT, then stop gracefully."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        _log.info("server.stopping", signal=signal.Signals(signum).name, grace_seconds=grace)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    running.stop(grace)
    _log.info("server.stopped")
