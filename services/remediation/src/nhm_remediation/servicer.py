"""gRPC edge of the remediation service: proto <-> domain only."""

from __future__ import annotations

from nhm.remediation.v1 import remediation_pb2_grpc


class RemediationServiceServicer(remediation_pb2_grpc.RemediationServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the remediation issue lands."""
