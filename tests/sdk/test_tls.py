"""The SDK over TLS and mutual TLS, against a registry configured with certificate files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nhm_sdk import Client, TlsConfig, UnavailableError
from nhm_testing.certs import CertificateAuthority
from nhm_testing.services import ServiceHandle


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca, stranger = CertificateAuthority(tmp_path, "nhm-ca"), CertificateAuthority(tmp_path, "stranger-ca")
    return {"ca": ca, "stranger": stranger, "server": ca.issue("registry", server=True),
            "client": ca.issue("dialer", server=False), "stranger_client": stranger.issue("intruder", server=False)}


def test_mutual_tls_with_a_custom_ca_and_a_client_certificate(
        start_service: Callable[..., ServiceHandle], make_client: Callable[..., Client], pki: dict[str, Any]) -> None:
    from nhm_registry.app import SPEC

    server = start_service(SPEC, tls_cert_file=str(pki["server"].cert), tls_key_file=str(pki["server"].key),
                           tls_client_ca_file=str(pki["ca"].pair.cert))
    trusted = make_client(registry_target=server.address, tls=TlsConfig(
        ca_file=str(pki["ca"].pair.cert), cert_file=str(pki["client"].cert), key_file=str(pki["client"].key)))
    assert trusted.get_tenant().id == "acme"

    without_certificate = make_client(registry_target=server.address, tls=TlsConfig(ca_file=str(pki["ca"].pair.cert)))
    with pytest.raises(UnavailableError):
        without_certificate.get_tenant(timeout=2)
    wrong_ca = make_client(registry_target=server.address, tls=TlsConfig(
        ca_file=str(pki["stranger"].pair.cert), cert_file=str(pki["client"].cert), key_file=str(pki["client"].key)))
    with pytest.raises(UnavailableError):
        wrong_ca.get_tenant(timeout=2)
    plain = make_client(registry_target=server.address)
    with pytest.raises(UnavailableError):
        plain.get_tenant(timeout=2)

    with pytest.raises(ValueError, match="go together"):
        TlsConfig(cert_file=str(pki["client"].cert))
