"""gRPC edge of the allocation service: proto <-> domain only."""

from __future__ import annotations

from nhm.allocation.v1 import allocation_pb2_grpc


class AllocationServiceServicer(allocation_pb2_grpc.AllocationServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the allocation issue lands."""
