"""API keys: who is calling, for which tenant.

Clients send ``authorization: Bearer <key>``. Keys are high-entropy random strings, so a SHA-256 digest is
enough to store and compare them. Resolvers are chained: static keys from settings, then keys the registry
manages (in its own database, or replicated from its feed by the other services).
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from nhm_platform.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

KEY_PREFIX = "nhm_"
# Metadata with which an admin or service key names the tenant it acts for.
TENANT_METADATA_KEY = "x-nhm-tenant-id"
# Metadata with which a service key names the service calling (audit trails and logs show "service:<name>").
CALLER_METADATA_KEY = "x-nhm-caller"
_CALLER = re.compile(r"[a-z][a-z0-9-]{0,31}")


class Role(Enum):
    TENANT = "tenant"
    READ_ONLY = "read_only"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. tenant_id is empty for admin and service principals."""

    role: Role
    tenant_id: str = ""
    key_id: str = ""
    name: str = ""

    @property
    def is_platform(self) -> bool:
        return self.role in (Role.ADMIN, Role.SERVICE)

    @property
    def actor(self) -> str:
        """How audit trails name this caller."""
        label = self.name or self.key_id or self.role.value
        return f"{self.role.value}:{label}"

    def tenant_for(self, requested: str = "", field: str = "tenant_id") -> str:
        """The tenant a call acts on: the key's own; for platform keys the one requested, or the one named in
        the call's ``x-nhm-tenant-id`` metadata (services acting on a tenant's behalf)."""
        if self.is_platform:
            if not requested and self.tenant_id:
                return self.tenant_id
            if not requested:
                raise InvalidArgument.for_field(field, "required for admin and service keys")
            return requested
        if requested and requested != self.tenant_id:
            # Another tenant is indistinguishable from one that does not exist.
            raise NotFound(f"tenant {requested!r} not found")
        return self.tenant_id

    def calling_as(self, caller: str) -> Principal:
        """A service key's principal named after the service that calls with it; other keys are unchanged."""
        if self.role is Role.SERVICE and _CALLER.fullmatch(caller):
            return dataclasses.replace(self, name=caller)
        return self

    def require_write(self) -> None:
        if self.role is Role.READ_ONLY:
            raise PermissionDenied("this key is read-only", reason="READ_ONLY_KEY")

    def require_platform(self) -> None:
        if not self.is_platform:
            raise PermissionDenied("this call needs an admin or service key", reason="ADMIN_ONLY")


class KeyResolver(Protocol):
    def resolve(self, secret_sha256: str) -> Principal | None:
        """The principal for a key's digest, or None if this resolver does not know it."""
        ...


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class StaticKeyResolver:
    """Keys given in settings: tenant keys, admin keys and the service key."""

    def __init__(self, tenant_keys: Iterable[tuple[str, str]] = (), admin_keys: Iterable[str] = (),
                 service_keys: Iterable[str] = ()) -> None:
        self._keys: dict[str, Principal] = {}
        for tenant_id, secret in tenant_keys:
            self._keys[hash_key(secret)] = Principal(Role.TENANT, tenant_id, key_id="static", name="static")
        for secret in admin_keys:
            self._keys[hash_key(secret)] = Principal(Role.ADMIN, key_id="admin", name="admin")
        for secret in service_keys:
            self._keys[hash_key(secret)] = Principal(Role.SERVICE, key_id="service", name="service")

    @classmethod
    def from_settings(cls, api_keys: str, admin_keys: str, service_key: str) -> StaticKeyResolver:
        return cls(parse_tenant_keys(api_keys), _split(admin_keys), _split(service_key))

    @property
    def tenant_ids(self) -> list[str]:
        return sorted({p.tenant_id for p in self._keys.values() if p.tenant_id})

    def resolve(self, secret_sha256: str) -> Principal | None:
        for digest, principal in self._keys.items():
            if hmac.compare_digest(digest, secret_sha256):
                return principal
        return None


class ChainedKeyResolver:
    def __init__(self, resolvers: Sequence[KeyResolver]) -> None:
        self._resolvers = list(resolvers)

    def resolve(self, secret_sha256: str) -> Principal | None:
        for resolver in self._resolvers:
            principal = resolver.resolve(secret_sha256)
            if principal is not None:
                return principal
        return None


def parse_tenant_keys(spec: str) -> list[tuple[str, str]]:
    """Parse "tenant=secret,tenant2=secret2"."""
    pairs = []
    for item in _split(spec):
        tenant_id, sep, secret = item.partition("=")
        if not sep or not tenant_id or not secret:
            raise ValueError("api_keys entries look like tenant_id=secret")
        pairs.append((tenant_id.strip(), secret.strip()))
    return pairs


def _split(spec: str) -> list[str]:
    return [part.strip() for part in spec.split(",") if part.strip()]


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <api key>'", reason="MALFORMED_KEY")
            return token.strip()
    raise Unauthenticated("missing API key: send metadata 'authorization: Bearer <api key>'", reason="MISSING_KEY")


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("nhm_principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the authentication interceptor)."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def serving_principal() -> Principal | None:
    """The caller of the RPC being served, or None outside an authenticated call."""
    return _current.get()


def set_current_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_current_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)
