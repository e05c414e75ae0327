"""gRPC adapters of the ports: the registry (lifecycle actions) and scoring (call activity, weekly report).

Every call uses the service key, names the tenant it acts for in ``x-nhm-tenant-id`` metadata and names this
service as the caller (the registry's audit trail shows its changes as "service:remediation").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nhm.type.v1 import types_pb2
from nhm_platform.protoconv import to_duration, to_timestamp
from nhm_platform.replica import service_metadata
from nhm_remediation.convert import activity_from_proto, enum_name, enum_value
from nhm_remediation.domain import LifecycleState, RegistryAction
from nhm_remediation.ports import CallActivity, UpstreamError

CALLER = "remediation"
# Worth retrying later: the upstream is down, slow, overloaded, racing, or not yet upgraded.
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.INTERNAL}


def _error(service: str, exc: grpc.RpcError) -> UpstreamError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return UpstreamError(f"{service}: {code.name}: {details}", transient=code in _TRANSIENT, code=code.name)


def _state(number: registry_pb2.Number) -> LifecycleState:
    return LifecycleState(enum_name(types_pb2.LifecycleState, "LIFECYCLE_STATE", number.state) or "ACTIVE")


class GrpcRegistry:
    def __init__(self, channel: grpc.Channel, service_key: str, timeout: float) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._key = service_key
        self._timeout = timeout

    def apply(self, tenant_id: str, phone_number: str, action: RegistryAction) -> LifecycleState:
        metadata = service_metadata(self._key, tenant_id, CALLER)
        try:
            if action.method == "retire":
                response: Any = self._stub.RetireNumber(
                    registry_pb2.RetireNumberRequest(phone_number=phone_number, reason=action.reason,
                                                     request_id=action.request_id),
                    metadata=metadata, timeout=self._timeout)
            else:
                request = registry_pb2.TransitionNumberRequest(
                    phone_number=phone_number, reason=action.reason, request_id=action.request_id,
                    target_state=enum_value(types_pb2.LifecycleState, "LIFECYCLE_STATE", action.target_state.value))
                if action.rest_until is not None:
                    request.rest_until.CopyFrom(to_timestamp(action.rest_until))
                if action.warmup_caps:
                    request.warmup_plan.daily_caps.extend(action.warmup_caps)
                if action.warmup_step is not None:
                    request.warmup_plan.step_duration.CopyFrom(to_duration(action.warmup_step))
                response = self._stub.TransitionNumber(request, metadata=metadata, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error("registry", exc) from None
        return _state(response.number)

    def state(self, tenant_id: str, phone_number: str) -> LifecycleState:
        try:
            response = self._stub.GetNumber(registry_pb2.GetNumberRequest(phone_number=phone_number),
                                            metadata=service_metadata(self._key, tenant_id, CALLER),
                                            timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error("registry", exc) from None
        return _state(response.number)


class GrpcScoring:
    def __init__(self, channel: grpc.Channel, service_key: str, timeout: float) -> None:
        self._stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        self._key = service_key
        self._timeout = timeout

    def call_activity(self, tenant_id: str, phone_number: str, days: int, sample_size: int) -> CallActivity:
        try:
            response = self._stub.GetCallActivity(
                scoring_pb2.GetCallActivityRequest(phone_number=phone_number, days=days, sample_size=sample_size),
                metadata=service_metadata(self._key, tenant_id, CALLER), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error("scoring", exc) from None
        return activity_from_proto(response)

    def weekly_report(self, tenant_id: str, period_end: datetime) -> dict[str, Any]:
        request = scoring_pb2.GetWeeklyReportRequest()
        request.period_end.CopyFrom(to_timestamp(period_end))
        try:
            response = self._stub.GetWeeklyReport(request, metadata=service_metadata(self._key, tenant_id, CALLER),
                                                  timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error("scoring", exc) from None
        return MessageToDict(response.report)
