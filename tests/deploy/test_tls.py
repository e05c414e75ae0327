"""TLS and mutual TLS between clients and services, configured by file paths."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.auth import StaticKeyResolver
from nhm_platform.probe import check
from nhm_platform.replica import upstream_channel
from nhm_platform.server import ServiceRegistration, create_server
from nhm_platform.settings import ServerSettings
from nhm_testing.certs import CertificateAuthority
from nhm_testing.keys import SERVICE_KEY, TENANT_A, TENANT_A_KEY, auth


class Echo(registry_pb2_grpc.RegistryServiceServicer):
    def GetNumber(self, request, context):
        return registry_pb2.GetNumberResponse(number=registry_pb2.Number(phone_number=request.phone_number))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = CertificateAuthority(folder, "nhm-ca"), CertificateAuthority(folder, "stranger-ca")
    return {"ca": ca, "stranger": stranger, "server": ca.issue("registry", server=True),
            "client": ca.issue("allocation", server=False),
            "stranger_client": stranger.issue("intruder", server=False)}


def start(settings: ServerSettings):
    registration = ServiceRegistration(
        ["nhm.registry.v1.RegistryService"],
        lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(Echo(), s))
    return create_server(settings, "tls-test", registration, StaticKeyResolver([(TENANT_A, TENANT_A_KEY)]))


def call(channel: grpc.Channel) -> str:
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    reply = stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"), metadata=auth(TENANT_A_KEY),
                           timeout=5)
    return reply.number.phone_number


def client_settings(pki, *, ca="ca", client="client") -> ServerSettings:
    pair = pki[client] if client else None
    return ServerSettings(upstream_ca_file=str(pki[ca].pair.cert),
                          upstream_cert_file=str(pair.cert) if pair else "",
                          upstream_key_file=str(pair.key) if pair else "")


@pytest.fixture
def mtls_server(pki):
    running, port = start(ServerSettings(port=0, tls_cert_file=str(pki["server"].cert),
                                         tls_key_file=str(pki["server"].key),
                                         tls_client_ca_file=str(pki["ca"].pair.cert)))
    yield port
    running.stop(0)


def test_mutual_tls_client_with_a_certificate_from_our_ca_is_served(pki, mtls_server):
    with upstream_channel(f"localhost:{mtls_server}", client_settings(pki)) as channel:
        assert call(channel) == "+14158675309"


@pytest.mark.parametrize("variant", ["plaintext", "no_client_cert", "client_cert_from_other_ca", "wrong_server_ca"])
def test_mutual_tls_refuses_everyone_else(pki, mtls_server, variant):
    target = f"localhost:{mtls_server}"
    if variant == "plaintext":
        channel = grpc.insecure_channel(target)
    elif variant == "no_client_cert":
        channel = upstream_channel(target, client_settings(pki, client=""))
    elif variant == "client_cert_from_other_ca":
        channel = upstream_channel(target, client_settings(pki, client="stranger_client"))
    else:
        channel = upstream_channel(target, client_settings(pki, ca="stranger"))
    with channel, pytest.raises(grpc.RpcError) as err:
        call(channel)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE


def test_server_tls_without_client_certificates(pki):
    running, port = start(ServerSettings(port=0, tls_cert_file=str(pki["server"].cert),
                                         tls_key_file=str(pki["server"].key)))
    try:
        with upstream_channel(f"localhost:{port}", client_settings(pki, client="")) as channel:
            assert call(channel) == "+14158675309"
        with grpc.insecure_channel(f"localhost:{port}") as channel, pytest.raises(grpc.RpcError):
            call(channel)
    finally:
        running.stop(0)


def test_probe_speaks_tls(pki, mtls_server, monkeypatch):
    assert not check(f"localhost:{mtls_server}", timeout=2)  # plain text is refused
    monkeypatch.setenv("NHM_PROBE_CA_FILE", str(pki["ca"].pair.cert))
    monkeypatch.setenv("NHM_PROBE_CERT_FILE", str(pki["client"].cert))
    monkeypatch.setenv("NHM_PROBE_KEY_FILE", str(pki["client"].key))
    assert check(f"localhost:{mtls_server}", timeout=5)


def test_half_configured_tls_is_refused_at_start():
    with pytest.raises(ValueError, match="both"):
        start(ServerSettings(port=0, tls_cert_file="/x.crt"))


def test_health_is_not_served_over_plaintext_when_tls_is_on(pki, mtls_server):
    with grpc.insecure_channel(f"localhost:{mtls_server}") as channel, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)


# --- mutual TLS identities ---

DIALER, ALLOCATION_ID = "dns:dialer.example", "uri:spiffe://nhm/allocation"


@pytest.fixture(scope="module")
def identities(pki):
    ca = pki["ca"]
    return {"dialer": ca.issue("dialer", server=False, names=("dialer.example",)),
            "allocation": ca.issue("allocation-svc", server=False, names=("spiffe://nhm/allocation",)),
            "other": ca.issue("other", server=False, names=("other.example",)),
            "legacy": ca.issue("legacy", server=False),
            "uri_lookalike": ca.issue("spiffe://nhm/allocation", server=False)}


def identity_server(pki, **identities: str):
    settings = ServerSettings(port=0, tls_cert_file=str(pki["server"].cert), tls_key_file=str(pki["server"].key),
                              tls_client_ca_file=str(pki["ca"].pair.cert), **identities)
    registration = ServiceRegistration(
        ["nhm.registry.v1.RegistryService"],
        lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(Echo(), s))
    return create_server(settings, "tls-test", registration,
                         StaticKeyResolver([(TENANT_A, TENANT_A_KEY)], service_keys=[SERVICE_KEY]))


def outcome(pki, identities, port: int, who: str, key: str) -> str:
    """"OK", or the refusal's code and ErrorInfo reason, for a call with that client certificate and key."""
    pair = identities[who]
    settings = ServerSettings(upstream_ca_file=str(pki["ca"].pair.cert), upstream_cert_file=str(pair.cert),
                              upstream_key_file=str(pair.key))
    with upstream_channel(f"localhost:{port}", settings) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        try:
            stub.GetNumber(registry_pb2.GetNumberRequest(phone_number="+14158675309"), metadata=auth(key), timeout=5)
            return "OK"
        except grpc.RpcError as error:
            status = rpc_status.from_call(error)
            infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)] if status else []
            info = error_details_pb2.ErrorInfo()
            if infos:
                infos[0].Unpack(info)
            return f"{error.code().name} {info.reason}"


def test_only_the_listed_client_identities_are_served_and_the_service_key_only_over_a_service_identity(
        pki, identities):
    running, port = identity_server(pki, tls_client_identities=DIALER, tls_service_identities=ALLOCATION_ID)
    try:
        seen = {}
        for who in identities:
            for name, key in (("tenant", TENANT_A_KEY), ("service", SERVICE_KEY)):
                seen[(who, name)] = outcome(pki, identities, port, who, key)
        refused = "PERMISSION_DENIED CLIENT_IDENTITY_NOT_ACCEPTED"
        assert seen == {
            ("dialer", "tenant"): "OK",  # by its subject alternative DNS name
            ("dialer", "service"): "PERMISSION_DENIED SERVICE_KEY_IDENTITY",  # a dialer holding the service key
            ("allocation", "tenant"): "OK",  # a service identity is served too
            ("allocation", "service"): "OK",  # by its SPIFFE URI
            ("other", "tenant"): refused, ("other", "service"): refused,  # signed by our CA, but not listed
            ("legacy", "tenant"): refused, ("legacy", "service"): refused,
            # a common name that looks like the service's URI is not that URI
            ("uri_lookalike", "tenant"): refused, ("uri_lookalike", "service"): refused,
        }
        with upstream_channel(f"localhost:{port}", ServerSettings(  # probes need no listed identity
                upstream_ca_file=str(pki["ca"].pair.cert), upstream_cert_file=str(identities["other"].cert),
                upstream_key_file=str(identities["other"].key))) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0)


def test_a_common_name_identity_and_a_service_binding_without_a_client_list(pki, identities):
    running, port = identity_server(pki, tls_client_identities="cn:legacy")
    try:
        assert outcome(pki, identities, port, "legacy", TENANT_A_KEY) == "OK"
        refused = "PERMISSION_DENIED CLIENT_IDENTITY_NOT_ACCEPTED"
        assert outcome(pki, identities, port, "dialer", TENANT_A_KEY) == refused
    finally:
        running.stop(0)
    running, port = identity_server(pki, tls_service_identities=ALLOCATION_ID)  # any certificate of the CA
    try:
        assert outcome(pki, identities, port, "other", TENANT_A_KEY) == "OK"
        assert outcome(pki, identities, port, "other", SERVICE_KEY) == "PERMISSION_DENIED SERVICE_KEY_IDENTITY"
        assert outcome(pki, identities, port, "allocation", SERVICE_KEY) == "OK"
    finally:
        running.stop(0)


@pytest.mark.parametrize("settings, message", [
    ({"tls_client_identities": DIALER}, "need mutual TLS"),
    ({"tls_service_identities": ALLOCATION_ID, "tls_cert_file": "x", "tls_key_file": "y"}, "need mutual TLS"),
    ({"tls_client_identities": "dialer.example", "tls_client_ca_file": "ca"}, "not an identity"),
    ({"tls_service_identities": "ip:127.0.0.1", "tls_client_ca_file": "ca"}, "not an identity"),
])
def test_identities_that_cannot_work_are_refused_at_start(settings, message):
    with pytest.raises(ValueError, match=message):
        start(ServerSettings(port=0, **settings))


def test_services_follow_each_other_over_mutual_tls_with_the_service_key_bound_to_their_identity(
        pki, identities, start_service):
    """The registry serves dialers and allocation only, and the service key only to allocation's certificate:
    allocation still follows its feed (with the service key, over its own certificate), a dialer's calls are
    served, and the service key over the dialer's certificate is refused."""
    from nhm.allocation.v1 import allocation_pb2, allocation_pb2_grpc
    from nhm_allocation.app import SPEC as ALLOCATION
    from nhm_registry.app import SPEC as REGISTRY

    registry = start_service(REGISTRY, tls_cert_file=str(pki["server"].cert), tls_key_file=str(pki["server"].key),
                             tls_client_ca_file=str(pki["ca"].pair.cert), tls_client_identities=DIALER,
                             tls_service_identities=ALLOCATION_ID, watch_poll_interval=0.05)
    allocation = start_service(ALLOCATION, registry_target=registry.address, scoring_target="",
                               upstream_ca_file=str(pki["ca"].pair.cert),
                               upstream_cert_file=str(identities["allocation"].cert),
                               upstream_key_file=str(identities["allocation"].key))
    dialer = ServerSettings(upstream_ca_file=str(pki["ca"].pair.cert),
                            upstream_cert_file=str(identities["dialer"].cert),
                            upstream_key_file=str(identities["dialer"].key))
    with upstream_channel(registry.address, dialer) as channel, allocation.channel() as allocation_channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        campaign = stub.CreateCampaign(registry_pb2.CreateCampaignRequest(
            campaign=registry_pb2.Campaign(name="outbound")), metadata=auth(TENANT_A_KEY), timeout=5).campaign
        usage = allocation_pb2_grpc.AllocationServiceStub(allocation_channel)
        deadline = time.monotonic() + 20
        while True:  # allocation learns the campaign through the registry's feed
            try:
                usage.GetCampaignUsage(allocation_pb2.GetCampaignUsageRequest(campaign_id=campaign.id),
                                       metadata=auth(TENANT_A_KEY), timeout=5)
                break
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline, error
                time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(stub.WatchChanges(registry_pb2.WatchChangesRequest(), metadata=auth(SERVICE_KEY), timeout=5)))
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
