"""What a refused call says: its BadRequest field violations, or any other typed detail."""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def violations(error: grpc.RpcError) -> dict[str, str]:
    """The BadRequest field violations of an error, {field: description}."""
    status = rpc_status.from_call(error)
    found: dict[str, str] = {}
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


M = TypeVar("M", bound=Message)


def typed_detail(error: grpc.RpcError, message_type: type[M]) -> M | None:
    """The first detail of that type (ErrorInfo, RetryInfo, ...) in an error's google.rpc.Status, or None."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(message_type.DESCRIPTOR):
            found = message_type()
            detail.Unpack(found)
            return found
    return None
