"""The server kit through a real server: authentication, access log, error mapping, health, reflection."""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.auth import StaticKeyResolver
from nhm_platform.errors import FieldViolation, InvalidArgument, NotFound
from nhm_platform.logs import configure_logging
from nhm_platform.replica import service_metadata
from nhm_platform.server import ServiceRegistration, create_server
from nhm_platform.settings import ServerSettings
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, TENANT_B, TENANT_B_KEY, auth

SERVICE_NAME = "nhm.registry.v1.RegistryService"


class ProbeServicer(registry_pb2_grpc.RegistryServiceServicer):
    """Stands in for a service: each RPC exercises one path through the interceptors."""

    def GetNumber(self, request, context):
        if request.phone_number == "boom":
            raise RuntimeError("secret internal detail")
        if request.phone_number == "bad":
            raise InvalidArgument.for_fields([FieldViolation("phone_number", "must be E.164")])
        if request.phone_number == "missing":
            raise NotFound("number +14158675309 not found")
        from nhm_platform.auth import current_principal

        return registry_pb2.GetNumberResponse(number=registry_pb2.Number(tenant_id=current_principal().tenant_id))


@pytest.fixture
def server():
    registration = ServiceRegistration(
        [SERVICE_NAME], lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(ProbeServicer(), s))
    resolver = StaticKeyResolver([(TENANT_A, TENANT_A_KEY), (TENANT_B, TENANT_B_KEY)])
    running, port = create_server(ServerSettings(port=0), "probe", registration, resolver)
    yield port
    running.stop(0)


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(f"localhost:{server}") as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)


def test_authenticated_call_sees_its_tenant(stub):
    reply = stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"), metadata=auth(TENANT_A_KEY))
    assert reply.number.tenant_id == TENANT_A


@pytest.mark.parametrize("metadata", [(), auth("nhm_wrong"), (("authorization", "Basic abc"),)])
def test_missing_or_wrong_key_is_unauthenticated(stub, metadata, capsys):
    configure_logging("json", "info")
    with pytest.raises(grpc.RpcError) as err:
        stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"), metadata=metadata)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in logged if line.get("event") == "rpc"]
    assert access and access[-1]["code"] == "UNAUTHENTICATED"
    assert access[-1]["method"] == f"/{SERVICE_NAME}/GetNumber"
    assert "nhm_wrong" not in json.dumps(logged) and "Bearer" not in json.dumps(logged)


def test_domain_error_carries_field_violations(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="bad"), metadata=auth(TENANT_A_KEY))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    violations = []
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
    assert violations == [("phone_number", "must be E.164")]
    assert reasons == ["INVALID_ARGUMENT"]
    assert dict(err.value.trailing_metadata()).get("x-request-id")


def test_request_id_from_metadata_is_echoed(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="missing"),
                       metadata=(*auth(TENANT_A_KEY), ("x-request-id", "req-42")))
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert dict(err.value.trailing_metadata())["x-request-id"] == "req-42"


def test_each_call_of_a_method_is_served_with_its_own_key_and_request_id(stub):
    """The interceptors wrap a method's handler once; what they read of a call must still be that call's."""
    for round_ in range(3):
        for tenant, key in ((TENANT_A, TENANT_A_KEY), (TENANT_B, TENANT_B_KEY)):
            reply = stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"), metadata=auth(key))
            assert reply.number.tenant_id == tenant
            request_id = f"req-{tenant}-{round_}"
            with pytest.raises(grpc.RpcError) as err:
                stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="missing"),
                               metadata=(*auth(key), ("x-request-id", request_id)))
            assert dict(err.value.trailing_metadata())["x-request-id"] == request_id
        with pytest.raises(grpc.RpcError) as err:
            stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"), metadata=auth("nhm_wrong"))
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_unexpected_exception_is_internal_without_detail(stub, capsys):
    configure_logging("json", "info")
    with pytest.raises(grpc.RpcError) as err:
        stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="boom"), metadata=auth(TENANT_A_KEY))
    assert err.value.code() is grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in err.value.details()
    assert "secret internal detail" in capsys.readouterr().err  # logged in full for the operator


def test_health_and_reflection_need_no_key(server):
    with grpc.insecure_channel(f"localhost:{server}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert SERVICE_NAME in names


def test_stop_turns_health_not_serving():
    registration = ServiceRegistration([SERVICE_NAME], lambda s: None)
    running, port = create_server(ServerSettings(port=0), "probe", registration, StaticKeyResolver())
    running.health.enter_graceful_shutdown()
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    running.stop(0)


def test_a_service_can_publish_its_own_health_entries():
    def publish(health_servicer):
        health_servicer.set("probe.replication", health_pb2.HealthCheckResponse.NOT_SERVING)

    registration = ServiceRegistration([SERVICE_NAME], lambda s: None, on_serving=[publish])
    running, port = create_server(ServerSettings(port=0), "probe", registration, StaticKeyResolver())
    try:
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            detail = stub.Check(health_pb2.HealthCheckRequest(service="probe.replication"))
            overall = stub.Check(health_pb2.HealthCheckRequest())
        assert detail.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0)


def test_service_key_acts_for_the_tenant_named_in_metadata():
    from nhm_platform.auth import current_principal

    seen = {}

    class Servicer(registry_pb2_grpc.RegistryServiceServicer):
        def GetNumber(self, request, context):
            principal = current_principal()
            seen["tenant"] = principal.tenant_for()
            seen["role"] = principal.role.value
            return registry_pb2.GetNumberResponse()

    registration = ServiceRegistration(
        [SERVICE_NAME], lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(Servicer(), s))
    resolver = StaticKeyResolver([(TENANT_A, TENANT_A_KEY)], service_keys=["svc-key"])
    running, port = create_server(ServerSettings(port=0), "probe", registration, resolver)
    try:
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            stub.GetNumber(registry_pb2.GetNumberRequest(), metadata=service_metadata("svc-key", "globex"))
            assert seen == {"tenant": "globex", "role": "service"}
            # A tenant key cannot borrow another tenant through the same metadata.
            stub.GetNumber(registry_pb2.GetNumberRequest(),
                           metadata=(*auth(TENANT_A_KEY), ("x-nhm-tenant-id", "globex")))
            assert seen["tenant"] == TENANT_A
    finally:
        running.stop(0)
