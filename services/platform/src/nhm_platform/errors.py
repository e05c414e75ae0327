"""Domain errors, raised by the service layer and turned into rich gRPC statuses at the edge.

Each error carries a status code, a message a person can act on, a machine-readable reason
(google.rpc.ErrorInfo), and optionally field violations (google.rpc.BadRequest), a retry delay
(google.rpc.RetryInfo) and further typed detail messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "nhm"
# What an error's trailers may carry (gRPC clients refuse trailers over 16 KiB, and may over 8 KiB): the message
# and each field violation's name and description are cut to these lengths, and field violations are sent while
# they fit in VIOLATION_BYTES.
MESSAGE_CHARS = 512
VIOLATION_CHARS = 200
VIOLATION_BYTES = 2048
# gRPC's server pushback (gRFC A6): a client whose retry policy covers the code waits this many milliseconds
# before trying again, or does not retry when it is negative.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
        retry_after: timedelta | None = None,
        details: Iterable[Message] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.violations = list(violations)
        self.retry_after = retry_after
        self.details = list(details)

    def retry_pushback(self, time_remaining: float | None) -> tuple[tuple[str, str], ...]:
        """The pushback trailer matching this error's RetryInfo, for clients that let gRPC retry the call: wait
        that long, when the wait ends before the call's deadline; otherwise do not retry, so that the caller gets
        this error and its retry delay now rather than DEADLINE_EXCEEDED after waiting for nothing."""
        if self.retry_after is None:
            return ()
        wait_ms = math.ceil(self.retry_after.total_seconds() * 1000)
        fits = time_remaining is None or wait_ms / 1000 < time_remaining
        return ((RETRY_PUSHBACK_KEY, str(wait_ms) if fits else "-1"),)

    def to_status(self, extra_trailing_metadata: Sequence[tuple[str, str]] = ()) -> grpc.Status:
        """The rich status, sized to fit gRPC's trailers: a client drops a call whose trailers pass 16 KiB (and
        may past 8 KiB) with RESOURCE_EXHAUSTED, which would hide what to fix. The message and each violation are
        shortened, and field violations are sent while they fit VIOLATION_BYTES; ErrorInfo then says how many
        there were in all."""
        proto = status_pb2.Status(code=_CODE_NUMBERS[self.code], message=_shortened(self.message, MESSAGE_CHARS))
        bad = error_details_pb2.BadRequest()
        for v in self.violations:
            bad.field_violations.add(field=_shortened(v.field, VIOLATION_CHARS),
                                     description=_shortened(v.description, VIOLATION_CHARS))
            if bad.ByteSize() > VIOLATION_BYTES:
                del bad.field_violations[-1]
                break
        metadata = dict(self.metadata)
        if len(bad.field_violations) < len(self.violations):
            metadata.update(field_violations=str(len(self.violations)),
                            field_violations_sent=str(len(bad.field_violations)))
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=metadata)
        _pack(proto, info)
        if self.violations:
            _pack(proto, bad)
        if self.retry_after is not None:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromTimedelta(self.retry_after)
            _pack(proto, retry)
        for detail in self.details:
            _pack(proto, detail)
        status = rpc_status.to_status(proto)
        if extra_trailing_metadata:
            metadata = tuple(status.trailing_metadata) + tuple(extra_trailing_metadata)
            return _Status(status.code, status.details, metadata)
        return status


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def for_field(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls(f"{field}: {description}", reason=reason, violations=[FieldViolation(field, description)])

    @classmethod
    def for_fields(cls, violations: Sequence[FieldViolation], *, reason: str | None = None) -> InvalidArgument:
        shown = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        return cls(f"{len(violations)} invalid field(s): {shown}{more}", reason=reason, violations=violations)


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrent change won (stale etag, serialization failure): read again and retry."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unavailable(DomainError):
    """A dependency (the database, an upstream) cannot be reached now; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


def internal_status(message: str = "internal error; the incident was logged") -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message=message))


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _pack(status: status_pb2.Status, message: Message) -> None:
    holder = any_pb2.Any()
    holder.Pack(message)
    status.details.append(holder)


_CODE_NUMBERS = {code: code.value[0] for code in grpc.StatusCode}


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
