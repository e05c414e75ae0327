"""TLS and mutual TLS between clients and services, configured by file paths."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nhm.registry.v1 import registry_pb2, registry_pb2_grpc
from nhm_platform.auth import StaticKeyResolver
from nhm_platform.probe import check
from nhm_platform.replica import upstream_channel
from nhm_platform.server import ServiceRegistration, create_server
from nhm_platform.settings import ServerSettings
from nhm_testing.certs import CertificateAuthority
from nhm_testing.keys import TENANT_A, TENANT_A_KEY, auth


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
