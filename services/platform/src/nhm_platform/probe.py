"""A tiny health probe for container health checks: exit 0 when the service is healthy.

Usage: python -m nhm_platform.probe [HOST:PORT | URL] [--service NAME] [--timeout SECONDS]
HOST:PORT asks the gRPC health service (SERVING is healthy); the address defaults to 127.0.0.1:<NHM_PORT>.
An http:// or https:// URL (the dashboard's /healthz) is healthy when it answers 200.
TLS is used when NHM_PROBE_CA_FILE names a CA (and NHM_PROBE_CERT_FILE/NHM_PROBE_KEY_FILE a client
certificate for gRPC).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    ca = os.environ.get("NHM_PROBE_CA_FILE")
    if ca:
        cert, key = os.environ.get("NHM_PROBE_CERT_FILE"), os.environ.get("NHM_PROBE_KEY_FILE")
        credentials = grpc.ssl_channel_credentials(
            Path(ca).read_bytes(), Path(key).read_bytes() if key else None, Path(cert).read_bytes() if cert else None)
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def check_http(url: str, timeout: float = 3.0) -> bool:
    ca = os.environ.get("NHM_PROBE_CA_FILE")
    context = ssl.create_default_context(cafile=ca) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as reply:  # noqa: S310 (http(s) only)
            return int(reply.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 if a gRPC service reports SERVING (or a URL answers 200).")
    parser.add_argument("address", nargs="?", default=f"127.0.0.1:{os.environ.get('NHM_PORT', '50051')}")
    parser.add_argument("--service", default="", help="service name to check (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.address.startswith(("http://", "https://")):
        healthy = check_http(args.address, args.timeout)
        print("OK" if healthy else "NOT OK")
    else:
        healthy = check(args.address, args.service, args.timeout)
        print("SERVING" if healthy else "NOT SERVING")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
