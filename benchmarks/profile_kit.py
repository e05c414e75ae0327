"""What the kit's server interceptors cost per call, each alone and as a server installs them, without gRPC.

    .venv/bin/python benchmarks/profile_kit.py [--calls 20000] [--log-level warning]

The interceptors a service's server installs (nhm_platform.server: access log, metrics and request id;
authentication; the well-formed check; mutual TLS identities and rate limits are off here, as on the allocation
hot path) are asked for AllocateNumber's handler once, as gRPC does, and the wrapped behaviour is then called in a
loop with a stand-in call context; the handler itself returns a prepared answer. The figure is the best of five
runs, in microseconds per call, beside the bare handler's. The access log's line is filtered out below the log
level (the benchmarks run at warning; info writes one JSON line per call to stderr, sent to /dev/null here).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from nhm.allocation.v1 import allocation_pb2 as pb
from nhm_platform.auth import StaticKeyResolver
from nhm_platform.interceptors import AccessLogInterceptor, AuthInterceptor, WellFormedRequestInterceptor
from nhm_platform.logs import configure_logging
from nhm_platform.server import ServiceRegistration, _interceptors
from nhm_platform.settings import ServerSettings

METHOD = "/nhm.allocation.v1.AllocationService/AllocateNumber"
SECRET = secrets.token_urlsafe(16)  # a tenant key of the stand-in resolver
REQUEST = pb.AllocateNumberRequest(campaign_id="campaign-1", destination="+14155550123", call_id="call-1")
ANSWER = pb.AllocateNumberResponse(caller_id="+14155550100")


class _Context:
    """What the interceptors read of a call's grpc.ServicerContext."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {SECRET}"), ("user-agent", "grpc-python"))

    def code(self) -> None:
        return None

    def time_remaining(self) -> float:
        return 10.0

    def abort_with_status(self, status: Any) -> None:
        raise RuntimeError(f"the call failed: {status}")

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


@dataclass(frozen=True)
class _CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


def _handler(_request: Any, _context: Any) -> pb.AllocateNumberResponse:
    return ANSWER


def wrapped(interceptors: list[grpc.ServerInterceptor]) -> Callable[[Any, Any], Any]:
    """The behaviour gRPC would run for the method through these interceptors (outermost first)."""
    handler = grpc.unary_unary_rpc_method_handler(_handler, pb.AllocateNumberRequest.FromString,
                                                  pb.AllocateNumberResponse.SerializeToString)
    details = _CallDetails(METHOD, ())
    for interceptor in reversed(interceptors):
        handler = interceptor.intercept_service(lambda _details, inner=handler: inner, details)  # type: ignore[arg-type]
    return handler.unary_unary  # type: ignore[no-any-return]


def per_call_us(behaviour: Callable[[Any, Any], Any], calls: int) -> float:
    context = _Context()
    behaviour(REQUEST, context)  # once first: the wrappers are built on the first call of a method
    return min(timeit.repeat(lambda: behaviour(REQUEST, context), number=calls, repeat=5)) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--log-level", default="warning", help="the services' log level (info logs every call)")
    args = parser.parse_args(argv)
    resolver = StaticKeyResolver.from_settings(f"acme={SECRET}", "", "")
    variants = {
        "bare handler": _handler,
        "access log, metrics, request id": wrapped([AccessLogInterceptor("allocation")]),
        "authentication": wrapped([AuthInterceptor(resolver)]),
        "well-formed check": wrapped([WellFormedRequestInterceptor(ServerSettings.max_request_entries)]),
        "as a server installs them": wrapped(_interceptors(
            ServerSettings(), "allocation", ServiceRegistration([], lambda _server: None), resolver, None)),
    }
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        configure_logging("json", args.log_level)
        figures = {name: per_call_us(behaviour, args.calls) for name, behaviour in variants.items()}
    print(f"kit interceptors on AllocateNumber (log level {args.log_level}), best of 5 x {args.calls:,} calls:")
    for name, us in figures.items():
        print(f"  {name:<34} {us:7.2f} µs/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
