"""Server interceptors: access log, metrics, request ids and error mapping; authentication; mutual TLS
identities; timestamps and requests every service can convert and store; rate limits.

gRPC looks handlers up on its polling thread, so the work here happens inside the wrapped behaviour,
on the worker thread that serves the call (and where the context variables are then visible).
"""

from __future__ import annotations

import contextvars
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from nhm_platform.auth import (
    CALLER_METADATA_KEY,
    TENANT_METADATA_KEY,
    KeyResolver,
    Principal,
    bearer_token,
    current_principal,
    hash_key,
    reset_current_principal,
    set_current_principal,
)
from nhm_platform.errors import DomainError, FieldViolation, InvalidArgument, Unauthenticated, internal_status
from nhm_platform.metrics import RPC_SECONDS, RPC_TOTAL
from nhm_platform.peer_identity import PeerPolicy, identities_of
from nhm_platform.ratelimit import TenantRateLimit
from nhm_platform.row_scope import platform_rows
from nhm_platform.wellformed import malformed_fields

Behavior = Callable[[Any, grpc.ServicerContext], Any]
REQUEST_ID_KEY = "x-request-id"
# Health checks and reflection answer without a key, so probes and grpcurl work.
PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                   "/grpc.reflection.v1.ServerReflection/")

_log = structlog.get_logger("nhm.rpc")


@dataclass
class _CallInfo:
    request_id: str
    principal: Principal | None = None


# Set by the (outer) access log for the length of a call; authentication records the principal in it.
_call_info: contextvars.ContextVar[_CallInfo | None] = contextvars.ContextVar("nhm_call_info", default=None)


def current_request_id() -> str:
    """The x-request-id of the RPC being served (the client's, or one made for the call); "" outside a call."""
    info = _call_info.get()
    return info.request_id if info is not None else ""


def _wrap_handler(handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior, bool], Behavior],
                  deserializer: Any) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False), deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, True), deserializer, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, False), deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, True), deserializer, handler.response_serializer)


class _PerMethodInterceptor(grpc.ServerInterceptor):
    """Wraps each method's handler once and reuses it: gRPC asks every interceptor for the handler on every call,
    and building the wrappers afresh each time was a measurable part of a short call. The wrapped behaviours read
    what they need of a call (its metadata) from the call's own context."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def applies_to(self, method: str) -> bool:
        return not method.startswith(PUBLIC_SERVICES)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler, behavior: Behavior, streaming: bool) -> Behavior:
        raise NotImplementedError

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        if not self.applies_to(method):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: nothing to keep
            return None
        wrapped = _wrap_handler(handler, lambda behavior, streaming: self.wrap(method, handler, behavior, streaming),
                                self.request_deserializer(handler))
        self._wrapped[method] = wrapped
        return wrapped

    def request_deserializer(self, handler: grpc.RpcMethodHandler) -> Any:
        """The deserializer gRPC should apply before this interceptor's behaviour runs (the handler's own)."""
        return handler.request_deserializer


class AccessLogInterceptor(_PerMethodInterceptor):
    """One log line and metrics per RPC; request ids; domain errors become rich statuses.

    An unexpected exception becomes INTERNAL with no detail sent to the client, and is logged in full.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def wrap(self, method: str, handler: grpc.RpcMethodHandler, behavior: Behavior, streaming: bool) -> Behavior:
        if streaming:
            def stream_behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = time.perf_counter()
                info = _CallInfo(_request_id(context.invocation_metadata()))
                token = _call_info.set(info)
                try:
                    yield from behavior(request, context)
                except Exception as exc:  # noqa: BLE001 - every failure is mapped and logged
                    self._fail(exc, context, info.request_id)
                finally:
                    _call_info.reset(token)
                    self._finish(method, context, started, info)
            return stream_behavior

        def unary_behavior(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            info = _CallInfo(_request_id(context.invocation_metadata()))
            token = _call_info.set(info)
            try:
                return behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - every failure is mapped and logged
                self._fail(exc, context, info.request_id)
            finally:
                _call_info.reset(token)
                self._finish(method, context, started, info)
        return unary_behavior

    def _fail(self, exc: Exception, context: grpc.ServicerContext, request_id: str) -> None:
        if isinstance(exc, DomainError):
            trailers = ((REQUEST_ID_KEY, request_id), *exc.retry_pushback(context.time_remaining()))
            context.abort_with_status(exc.to_status(trailers))
        code = context.code()
        if code is not None and code is not grpc.StatusCode.OK:
            raise exc  # the handler aborted the call itself
        _log.error("rpc.unhandled_exception", request_id=request_id, exc_info=exc)
        context.abort_with_status(internal_status())

    def _finish(self, method: str, context: grpc.ServicerContext, started: float, info: _CallInfo) -> None:
        elapsed = time.perf_counter() - started
        code = context.code() or grpc.StatusCode.OK
        principal = info.principal
        code_name = code.name
        RPC_TOTAL.labels(self._service, method, code_name).inc()
        RPC_SECONDS.labels(self._service, method).observe(elapsed)
        _log.info("rpc", method=method, code=code_name, duration_ms=round(elapsed * 1000, 3),
                  tenant=principal.tenant_id if principal else None,
                  caller=principal.actor if principal else None, request_id=info.request_id)


class AuthInterceptor(_PerMethodInterceptor):
    """Resolves ``authorization: Bearer <key>`` to a principal; missing or unknown key: UNAUTHENTICATED."""

    def __init__(self, resolver: KeyResolver) -> None:
        super().__init__()
        self._resolver = resolver

    def wrap(self, method: str, handler: grpc.RpcMethodHandler, behavior: Behavior, streaming: bool) -> Behavior:
        if streaming:
            def stream_behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token = set_current_principal(self._authenticate(context.invocation_metadata()))
                try:
                    yield from behavior(request, context)
                finally:
                    reset_current_principal(token)
            return stream_behavior

        def unary_behavior(request: Any, context: grpc.ServicerContext) -> Any:
            token = set_current_principal(self._authenticate(context.invocation_metadata()))
            try:
                return behavior(request, context)
            finally:
                reset_current_principal(token)
        return unary_behavior

    def _authenticate(self, metadata: Any) -> Principal:
        digest = hash_key(bearer_token(metadata or ()))
        with platform_rows():  # a key is looked up among every tenant's keys, before the caller is known
            principal = self._resolver.resolve(digest)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key", reason="UNKNOWN_KEY")
        if principal.is_platform:
            acting_for = _metadata_value(metadata, TENANT_METADATA_KEY)
            if acting_for:
                principal = dataclasses.replace(principal, tenant_id=acting_for)
            principal = principal.calling_as(_metadata_value(metadata, CALLER_METADATA_KEY))
        info = _call_info.get()
        if info is not None:
            info.principal = principal
        return principal


class PeerIdentityInterceptor(_PerMethodInterceptor):
    """Mutual TLS identities (peer_identity.py): the client certificate must name an accepted identity, and the
    service key must come over a service's certificate. After authentication: the second check needs the key."""

    def __init__(self, policy: PeerPolicy) -> None:
        super().__init__()
        self._policy = policy

    def wrap(self, method: str, handler: grpc.RpcMethodHandler, behavior: Behavior, streaming: bool) -> Behavior:
        if streaming:
            def stream_behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                self._policy.check(identities_of(context.auth_context()), current_principal())
                yield from behavior(request, context)
            return stream_behavior

        def unary_behavior(request: Any, context: grpc.ServicerContext) -> Any:
            self._policy.check(identities_of(context.auth_context()), current_principal())
            return behavior(request, context)
        return unary_behavior


class WellFormedRequestInterceptor(_PerMethodInterceptor):
    """Refuses requests no service could convert or store (see wellformed.py) with INVALID_ARGUMENT, by field,
    before the service sees them."""

    def __init__(self, max_entries: int = 0) -> None:
        super().__init__()
        self._max_entries = max_entries

    def wrap(self, method: str, handler: grpc.RpcMethodHandler, behavior: Behavior, streaming: bool) -> Behavior:
        client_streaming = handler.request_streaming
        max_entries = self._max_entries

        def checked(request: Any) -> Any:
            if client_streaming:
                return _checked_stream(request, max_entries)
            _check_well_formed(request, max_entries)
            return request

        if streaming:
            def stream_behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                yield from behavior(checked(request), context)
            return stream_behavior

        def unary_behavior(request: Any, context: grpc.ServicerContext) -> Any:
            return behavior(checked(request), context)
        return unary_behavior


def _check_well_formed(request: Any, max_entries: int, prefix: str = "") -> None:
    violations = malformed_fields(request, prefix, max_entries=max_entries)
    if violations:
        raise InvalidArgument.for_fields(violations)


def _checked_stream(requests: Iterator[Any], max_entries: int) -> Iterator[Any]:
    for i, request in enumerate(requests):
        _check_well_formed(request, max_entries, f"requests[{i}].")  # each message is a request of its own
        yield request


class RateLimitInterceptor(_PerMethodInterceptor):
    """Applies the per-tenant rate limit to the named methods: after authentication (it needs the caller), and
    before the request is parsed or checked. gRPC hands this interceptor the request's bytes and it parses them
    only once the call is admitted, so a refused call of a 1,000-number import costs what a bare call does:
    a tenant hammering past its limit spends the server's time on little more than the refusals themselves."""

    def __init__(self, methods: Collection[str], limit: TenantRateLimit) -> None:
        super().__init__()
        self._methods, self._limit = frozenset(methods), limit

    def applies_to(self, method: str) -> bool:
        return method in self._methods

    def request_deserializer(self, handler: grpc.RpcMethodHandler) -> Any:
        return None  # the bytes: parsed in the behaviour, once admitted

    def wrap(self, method: str, handler: grpc.RpcMethodHandler, behavior: Behavior, streaming: bool) -> Behavior:
        parse = _parser(handler.request_deserializer)
        client_streaming = handler.request_streaming
        limit = self._limit

        def charged(data: bytes) -> Any:
            request = parse(data)
            limit.charge(current_principal(), _items_in(request))
            return request

        def paced(messages: Iterator[bytes], principal: Principal) -> Iterator[Any]:
            # The caller as the call's behaviour saw it: a service may read the stream on a thread of its own.
            for data in messages:
                request = parse(data)
                yield request
                # Before reading the next message: gRPC's flow control then holds the sender back.
                time.sleep(limit.charge(principal, _items_in(request)))

        def parsed(request: Any) -> Any:
            return paced(request, current_principal()) if client_streaming else charged(request)

        if streaming:
            def stream_behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with self._limit.admit(current_principal(), method):
                    yield from behavior(parsed(request), context)
            return stream_behavior

        def unary_behavior(request: Any, context: grpc.ServicerContext) -> Any:
            with self._limit.admit(current_principal(), method):
                return behavior(parsed(request), context)
        return unary_behavior


def _items_in(request: Any) -> int:
    """What a bulk request weighs: the entries of its longest list (numbers, events, observations), at least 1.
    A request forwarded to the bulk lane is still bytes here: its top-level fields are counted as protobuf
    reads them without knowing the message (the entries stay unparsed), the most repeated one being the list."""
    if isinstance(request, Message):
        return max([len(value) for field, value in request.ListFields() if field.is_repeated], default=1)
    try:
        fields = UnknownFieldSet(empty_pb2.Empty.FromString(request))
    except DecodeError:
        return 1  # the lane refuses it
    return max(Counter(field.field_number for field in fields).values(), default=1)


def _parser(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """What gRPC would have done with a request's bytes; bytes that are no such message are INVALID_ARGUMENT
    (gRPC itself answers INTERNAL)."""
    if deserializer is None:
        return lambda data: data

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            raise InvalidArgument.for_fields(
                [FieldViolation("request", f"is not a valid message of this method ({exc})")]) from exc
    return parse


def _metadata_value(metadata: Any, wanted: str) -> str:
    for key, value in metadata or ():
        if key == wanted:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY:
            text = value.decode() if isinstance(value, bytes) else value
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return uuid.uuid4().hex
