"""nhm's Python SDK: caller IDs for every outbound call, outcomes, health and remediation.

    from nhm_sdk import Client

    with Client() as nhm:                       # NHM_TARGET / NHM_API_KEY, or `make run`'s defaults
        with nhm.call(campaign_id, "+12127363100") as call:
            dial(call.caller_id)
            call.report(answered=True, talk_duration=42, sip_code=200)

The generated messages live in ``nhm.<service>.v1`` (e.g. ``nhm.registry.v1.registry_pb2``); the SDK takes
and returns them, and also takes plain values (str, datetime, timedelta, enum names, mappings).
"""

from nhm_sdk._async_client import AsyncClient, AsyncStream
from nhm_sdk._client import Client, Stream
from nhm_sdk._config import ClientConfig, KeepaliveConfig, RetryPolicy, Timeouts, TlsConfig
from nhm_sdk._convert import enum_number, from_timestamp, short_enum_name, to_duration, to_timestamp
from nhm_sdk._dialer import AsyncCall, AsyncOutcomeReporter, Call, OutcomeReporter, ReporterStats, disposition_for
from nhm_sdk._errors import (
    AbortedError,
    AlreadyExistsError,
    CallingRestrictedError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NhmError,
    NotFoundError,
    NothingEligibleError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from nhm_sdk._pagination import AsyncPageIterator, Page, PageIterator
from nhm_sdk._version import __version__

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AsyncCall",
    "AsyncClient",
    "AsyncOutcomeReporter",
    "AsyncPageIterator",
    "AsyncStream",
    "Call",
    "CallingRestrictedError",
    "CancelledError",
    "Client",
    "ClientConfig",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "KeepaliveConfig",
    "NhmError",
    "NotFoundError",
    "NothingEligibleError",
    "OutOfRangeError",
    "OutcomeReporter",
    "Page",
    "PageIterator",
    "PermissionDeniedError",
    "ReporterStats",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Stream",
    "Timeouts",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "__version__",
    "disposition_for",
    "enum_number",
    "from_timestamp",
    "short_enum_name",
    "to_duration",
    "to_timestamp",
]
