"""Errors as a typed hierarchy keyed by gRPC status code, carrying the server's details.

Every failed call raises an :class:`NhmError` subclass. The server's ``google.rpc.Status`` details are decoded:
``reason`` and ``metadata`` from ErrorInfo, ``field_violations`` from BadRequest, ``retry_after`` from RetryInfo,
and every detail message (including nhm's AllocationRefusal and CallingRestriction) in ``details``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from nhm.allocation.v1 import allocation_pb2

# googleapis-common-protos ships no py.typed marker: its modules are loaded untyped on purpose.
status_pb2: Any = importlib.import_module("google.rpc.status_pb2")
error_details_pb2: Any = importlib.import_module("google.rpc.error_details_pb2")

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

M = TypeVar("M", bound=Message)

# Detail messages the SDK decodes, by their Any type name.
_DETAIL_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ResourceInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
        error_details_pb2.DebugInfo,
        allocation_pb2.AllocationRefusal,
        allocation_pb2.CallingRestriction,
    )
}


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: ``field`` is a path into the request, e.g. ``numbers[3].phone_number``."""

    field: str
    description: str


class NhmError(Exception):
    """A call failed. ``code`` is the gRPC status code; the rest comes from the server's status details."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, reason: str = "",
                 metadata: dict[str, str] | None = None, field_violations: Sequence[FieldViolation] = (),
                 retry_after: timedelta | None = None, details: Sequence[Message] = (),
                 request_id: str = "", trailing_metadata: Sequence[tuple[str, str | bytes]] = ()) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations)
        self.retry_after = retry_after
        self.details = list(details)
        # The server's x-request-id for this call, to quote in a support request.
        self.request_id = request_id
        self.trailing_metadata = tuple(trailing_metadata)

    def detail(self, cls: type[M]) -> M | None:
        """The first detail message of this type, e.g. ``err.detail(AllocationRefusal)``."""
        for item in self.details:
            if isinstance(item, cls):
                return item
        return None

    def violation(self, field: str) -> FieldViolation | None:
        """The violation for one field, if the server named it."""
        for item in self.field_violations:
            if item.field == field:
                return item
        return None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason and self.reason != self.code.name:
            text += f" [{self.reason}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgumentError(NhmError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(NhmError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(NhmError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(NhmError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class CallingRestrictedError(FailedPreconditionError):
    """The prospect may not be called now (outside the calling window, or per-prospect limits).

    ``restriction`` says why and ``allowed_time`` when calling becomes allowed.
    """

    @property
    def restriction(self) -> allocation_pb2.CallingRestriction:
        found = self.detail(allocation_pb2.CallingRestriction)
        return found if found is not None else allocation_pb2.CallingRestriction()


class AbortedError(NhmError):
    """A concurrent change won (a stale etag): read again and retry."""

    code = grpc.StatusCode.ABORTED


class ResourceExhaustedError(NhmError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NothingEligibleError(ResourceExhaustedError):
    """AllocateNumber found no eligible caller ID. ``refusal`` counts the numbers excluded, by reason.

    Never place the call from some other number instead ("fail open" burns the pool); wait for
    ``refusal.retry_time`` or add numbers.
    """

    @property
    def refusal(self) -> allocation_pb2.AllocationRefusal:
        found = self.detail(allocation_pb2.AllocationRefusal)
        return found if found is not None else allocation_pb2.AllocationRefusal()

    @property
    def exclusions(self) -> dict[str, int]:
        """Excluded numbers by reason name, e.g. ``{"DAILY_CAP": 12, "FLAGGED": 2}``."""
        return {allocation_pb2.ExclusionReason.Name(item.reason).removeprefix("EXCLUSION_REASON_"): item.count
                for item in self.refusal.exclusions}


class UnauthenticatedError(NhmError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(NhmError):
    code = grpc.StatusCode.PERMISSION_DENIED


class UnavailableError(NhmError):
    """The service could not be reached (or shed the call). Retried automatically for idempotent calls."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(NhmError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(NhmError):
    code = grpc.StatusCode.CANCELLED


class UnimplementedError(NhmError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(NhmError):
    """The server failed unexpectedly (INTERNAL, UNKNOWN or DATA_LOSS); the incident was logged there."""

    code = grpc.StatusCode.INTERNAL


class OutOfRangeError(InvalidArgumentError):
    code = grpc.StatusCode.OUT_OF_RANGE


_BY_CODE: dict[grpc.StatusCode, type[NhmError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}


def error_class(code: grpc.StatusCode, details: Sequence[Message] = ()) -> type[NhmError]:
    """The class an error with this code and these details is raised as."""
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(
            isinstance(d, allocation_pb2.AllocationRefusal) for d in details):
        return NothingEligibleError
    if code is grpc.StatusCode.FAILED_PRECONDITION and any(
            isinstance(d, allocation_pb2.CallingRestriction) for d in details):
        return CallingRestrictedError
    return _BY_CODE.get(code, NhmError)


def decode_details(raw: bytes | None) -> tuple[Any, list[Message]]:
    """The google.rpc.Status in a grpc-status-details-bin trailer and its decodable detail messages."""
    if not raw:
        return None, []
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError:
        return None, []
    messages: list[Message] = []
    for holder in status.details:
        messages.extend(_unpack(holder))
    return status, messages


def _unpack(holder: any_pb2.Any) -> list[Message]:
    cls = _DETAIL_TYPES.get(holder.TypeName())
    if cls is None:
        return []
    message = cls()
    return [message] if holder.Unpack(message) else []


def error_from_parts(code: grpc.StatusCode, message: str,
                     trailing_metadata: Sequence[tuple[str, Any]] | None) -> NhmError:
    """Build the typed error from a call's code, message and trailing metadata."""
    trailers = tuple(trailing_metadata or ())
    raw: bytes | None = None
    request_id = ""
    for key, value in trailers:
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            raw = value
        elif key == "x-request-id":
            request_id = value.decode() if isinstance(value, bytes) else str(value)
    status, details = decode_details(raw)
    if status is not None and status.message:
        message = str(status.message)
    reason, meta, retry_after = "", {}, None
    violations: list[FieldViolation] = []
    for item in details:
        if isinstance(item, error_details_pb2.ErrorInfo) and not reason:
            reason, meta = item.reason, dict(item.metadata)
        elif isinstance(item, error_details_pb2.BadRequest):
            violations.extend(FieldViolation(v.field, v.description) for v in item.field_violations)
        elif isinstance(item, error_details_pb2.RetryInfo) and retry_after is None:
            retry_after = item.retry_delay.ToTimedelta()
    cls = error_class(code, details)
    return cls(message or code.name, code=code, reason=reason or code.name, metadata=meta,
               field_violations=violations, retry_after=retry_after, details=details, request_id=request_id,
               trailing_metadata=trailers)


def from_rpc_error(error: grpc.RpcError) -> NhmError:
    """The typed error for a failed sync call (a grpc.Call) or an aio call (grpc.aio.AioRpcError)."""
    code_fn = getattr(error, "code", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details_fn = getattr(error, "details", None)
    message = (details_fn() if callable(details_fn) else "") or ""
    trailers_fn = getattr(error, "trailing_metadata", None)
    trailers = trailers_fn() if callable(trailers_fn) else ()
    return error_from_parts(code or grpc.StatusCode.UNKNOWN, message, trailers)
