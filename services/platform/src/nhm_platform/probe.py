"""A tiny gRPC health probe for container health checks: exit 0 when the service is SERVING.

Usage: python -m nhm_platform.probe [HOST:PORT] [--service NAME] [--timeout SECONDS]
The address defaults to 127.0.0.1:<port from the service's settings variable>, TLS is used when
NHM_PROBE_CA_FILE names a CA (and NHM_PROBE_CERT_FILE/NHM_PROBE_KEY_FILE a client certificate).
"""

from __future__ import annotations

import argparse
import os
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 if a gRPC service reports SERVING.")
    parser.add_argument("address", nargs="?", default=f"127.0.0.1:{os.environ.get('NHM_PORT', '50051')}")
    parser.add_argument("--service", default="", help="service name to check (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    serving = check(args.address, args.service, args.timeout)
    print("SERVING" if serving else "NOT SERVING")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
