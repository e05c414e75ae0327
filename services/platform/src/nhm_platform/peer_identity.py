"""Who is on the other end of a mutual-TLS connection, and whether this server accepts them.

With a client CA (``tls_client_ca_file``) every connection presents a certificate from that CA. Identities
narrow it further. ``tls_client_identities`` lists the client certificates a server serves, and
``tls_service_identities`` those that may present the service key. Each identity names one field of the
certificate: ``dns:<name>`` (a subject alternative DNS name), ``uri:<uri>`` (a subject alternative URI, e.g. a
SPIFFE id), or ``cn:<name>`` (the subject's common name). The prefix keeps the fields apart, so a common name
that looks like a URI never passes for one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nhm_platform.auth import Principal, Role
from nhm_platform.errors import PermissionDenied

# Identity prefix -> the gRPC auth context property it is read from.
_FIELDS = {"dns": "peer_dns", "uri": "peer_uri", "cn": "x509_common_name"}


def parse_identities(spec: str, setting: str) -> frozenset[str]:
    """ "dns:a,uri:spiffe://b" -> {"dns:a", "uri:spiffe://b"}; ValueError naming the setting for anything else."""
    identities = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        kind, sep, value = item.partition(":")
        if not sep or kind not in _FIELDS or not value:
            raise ValueError(f"{setting}: {item!r} is not an identity; write dns:<name>, uri:<uri> or cn:<name>")
        identities.add(f"{kind}:{value}")
    return frozenset(identities)


def identities_of(auth_context: Mapping[str, Sequence[bytes]]) -> frozenset[str]:
    """The identities the client certificate of a call's connection carries (none without one)."""
    return frozenset(f"{kind}:{value.decode(errors='replace')}"
                     for kind, prop in _FIELDS.items() for value in auth_context.get(prop, ()))


@dataclass(frozen=True)
class PeerPolicy:
    """accepted: identities served (empty: any certificate the client CA signed); services: identities that may
    use the service key (empty: the service key is not bound to a certificate)."""

    accepted: frozenset[str]
    services: frozenset[str]

    @classmethod
    def from_settings(cls, client_identities: str, service_identities: str) -> PeerPolicy:
        services = parse_identities(service_identities, "tls_service_identities")
        accepted = parse_identities(client_identities, "tls_client_identities")
        return cls(accepted | services if accepted else accepted, services)

    @property
    def enabled(self) -> bool:
        return bool(self.accepted or self.services)

    def check(self, identities: Iterable[str], principal: Principal) -> None:
        """Refuse (PERMISSION_DENIED) a connection whose certificate names no accepted identity, and the service
        key over one whose certificate names no service identity."""
        shown = frozenset(identities)
        if self.accepted and not shown & self.accepted:
            raise PermissionDenied(
                f"this server does not accept the client certificate ({_listed(shown)}): it is not in "
                "tls_client_identities", reason="CLIENT_IDENTITY_NOT_ACCEPTED")
        if self.services and principal.role is Role.SERVICE and not shown & self.services:
            raise PermissionDenied(
                f"the service key is accepted only over a connection whose client certificate is a service's "
                f"(tls_service_identities); this one is {_listed(shown)}", reason="SERVICE_KEY_IDENTITY")


def _listed(identities: frozenset[str]) -> str:
    return ", ".join(sorted(identities)) or "without a certificate identity"
