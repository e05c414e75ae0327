"""Channels the clients own: credentials, keepalive, load balancing and retries from a gRPC service config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from nhm_sdk._config import AUDIT_SERVICE_NAME, SERVICE_NAMES, ClientConfig, TlsConfig
from nhm_sdk._version import __version__

# Calls that must not be repeated by gRPC: every other method is idempotent (reads, or writes carrying a request
# id, call id or event ids that the SDK fills in), so its retry cannot double count.
NOT_RETRIED: dict[str, tuple[str, ...]] = {
    "registry": ("WatchChanges",),
    "scoring": ("StreamCallOutcomes", "WatchHealth"),
    "allocation": (),
    "remediation": ("DeleteAlertSubscription", "WatchCases"),
}

# The bulk and ingest calls the servers limit per tenant, which gRPC retries after the wait a refusal names (the
# servers' rate limits send RetryInfo and the same wait as gRPC's server pushback). StreamCallOutcomes is limited
# too, but a client stream is slowed down by the server rather than refused, and is not retried.
RATE_LIMITED: dict[str, tuple[str, ...]] = {
    "registry": ("BatchCreateNumbers", "AssignNumbers", "UnassignNumbers"),
    "scoring": ("ReportCallOutcomes", "ReportComplaints", "ReportReputationObservations", "ImportReputationCsv"),
}


def service_config(config: ClientConfig) -> dict[str, Any]:
    """The gRPC service config: load balancing, and retryPolicy on UNAVAILABLE for idempotent methods (and on
    RESOURCE_EXHAUSTED for the rate-limited ones)."""
    retry = config.retry
    method_configs: list[dict[str, Any]] = []
    if retry.max_attempts > 1:
        policy = {
            "maxAttempts": retry.max_attempts,
            "initialBackoff": f"{retry.initial_backoff:.3f}s",
            "maxBackoff": f"{retry.max_backoff:.3f}s",
            "backoffMultiplier": retry.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        method_configs.append({
            "name": [{"service": name} for name in (*SERVICE_NAMES.values(), AUDIT_SERVICE_NAME)],
            "retryPolicy": policy,
        })
        # A config naming the method wins over the one naming its service.
        if retry.wait_out_rate_limits:
            method_configs.append({
                "name": [{"service": SERVICE_NAMES[service], "method": method}
                         for service, methods in RATE_LIMITED.items() for method in methods],
                "retryPolicy": {**policy, "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]},
            })
        excluded = [{"service": SERVICE_NAMES[service], "method": method}
                    for service, methods in NOT_RETRIED.items() for method in methods]
        method_configs.append({"name": excluded})  # no retryPolicy
    result: dict[str, Any] = {
        "loadBalancingConfig": [{config.load_balancing: {}}],
        "methodConfig": method_configs,
    }
    if retry.max_attempts > 1:
        result["retryThrottling"] = {"maxTokens": retry.throttle_max_tokens,
                                     "tokenRatio": retry.throttle_token_ratio}
    return result


def channel_options(config: ClientConfig) -> list[tuple[str, str | int]]:
    keepalive = config.keepalive
    options: list[tuple[str, str | int]] = [
        ("grpc.service_config", json.dumps(service_config(config))),
        # The config above is the one that applies, whatever a DNS TXT record says.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1 if config.retry.max_attempts > 1 else 0),
        ("grpc.per_rpc_retry_buffer_size", config.retry.buffer_bytes),
        ("grpc.keepalive_time_ms", int(keepalive.time * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive.timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 1 if keepalive.permit_without_calls else 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.primary_user_agent", f"{config.user_agent}/{__version__}"),
    ]
    if config.tls is not None and config.tls.server_name:
        options.append(("grpc.ssl_target_name_override", config.tls.server_name))
    options.extend(config.channel_options)
    return options


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    root = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    key = Path(tls.key_file).read_bytes() if tls.key_file else None
    chain = Path(tls.cert_file).read_bytes() if tls.cert_file else None
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def open_channel(config: ClientConfig, target: str) -> grpc.Channel:
    options = channel_options(config)
    if config.tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, channel_credentials(config.tls), options=options)


def open_aio_channel(config: ClientConfig, target: str) -> grpc.aio.Channel:
    options = channel_options(config)
    if config.tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, channel_credentials(config.tls), options=options)


def base_metadata(config: ClientConfig) -> tuple[tuple[str, str], ...]:
    """Metadata on every call: the key, the tenant acted for, and the caller's extras."""
    items: list[tuple[str, str]] = []
    if config.api_key:
        items.append(("authorization", f"Bearer {config.api_key}"))
    if config.tenant_id:
        items.append(("x-nhm-tenant-id", config.tenant_id))
    items.extend((key.lower(), value) for key, value in config.metadata)
    return tuple(items)


def merge_metadata(base: Sequence[tuple[str, str]], extra: Sequence[tuple[str, str]] | None,
                   request_id: str | None) -> tuple[tuple[str, str], ...]:
    items = list(base)
    if extra:
        names = {key.lower() for key, _ in extra}
        # A per-call authorization or tenant replaces the client's.
        items = [(k, v) for k, v in items if k not in names or k not in ("authorization", "x-nhm-tenant-id")]
        items.extend((key.lower(), value) for key, value in extra)
    if request_id and not any(k == "x-request-id" for k, _ in items):
        items.append(("x-request-id", request_id))
    return tuple(items)
