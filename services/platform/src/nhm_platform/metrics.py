"""Prometheus metrics: RPC counts and latency per service and method, served on /metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

RPC_TOTAL = Counter("nhm_rpc_total", "RPCs handled, by final status code.", ["service", "method", "code"])
RPC_SECONDS = Histogram(
    "nhm_rpc_duration_seconds",
    "Time to handle an RPC (streams: until they end).",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FEED_LAG_SECONDS = Gauge(
    "nhm_feed_staleness_seconds",
    "Seconds since a followed change feed was last known to be current.",
    ["service", "upstream"],
)
FEED_REVISION = Gauge("nhm_feed_revision", "Last revision applied from a followed feed.", ["service", "upstream"])


def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> int:
    """Serve /metrics on port (0: a free one); returns the port. A port below 0 serves nothing."""
    if port < 0:
        return -1
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)
