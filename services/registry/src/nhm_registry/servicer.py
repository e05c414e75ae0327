"""gRPC edge of the registry service: proto <-> domain only."""

from __future__ import annotations

from nhm.registry.v1 import registry_pb2_grpc


class RegistryServiceServicer(registry_pb2_grpc.RegistryServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the registry issue lands."""
