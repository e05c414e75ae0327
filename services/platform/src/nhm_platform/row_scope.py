"""Which rows a transaction may touch on PostgreSQL: one tenant's, or every tenant's for the platform's own work.

Row-level security is the second wall behind the repositories' own tenant filters. Every tenant-scoped table
is ENABLEd and FORCEd with the policy :data:`POLICY_EXPRESSION` (migrations call
:func:`nhm_platform.migrations.protect_rows`): a row is visible, and may be written, only when its tenant is
the transaction's ``nhm.tenant_id`` setting, or when ``nhm.platform`` is ``on``. :class:`nhm_platform.db.Database`
sets both, transaction-locally (``set_config(..., true)``), at the start of every transaction, from
:func:`current_row_scope`; a pooled connection therefore carries nothing into the next transaction, and a
transaction with no scope sees no rows at all.

The scope of an RPC follows from its caller: a tenant key's calls see their tenant's rows only; an admin or
service key acting for a tenant (``x-nhm-tenant-id``) that tenant's; an admin or service key acting for none,
the platform's. Work with no caller (feed followers, housekeeping, schedulers, resolving an API key among
every tenant's) names the platform scope explicitly with :func:`platform_rows`, which refuses to run inside a
tenant key's call.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from nhm_platform.auth import serving_principal

TENANT_SETTING = "nhm.tenant_id"
PLATFORM_SETTING = "nhm.platform"
# Unset or empty settings match nothing: a transaction that names no scope sees no rows (fail closed).
POLICY_EXPRESSION = (f"{{column}} = current_setting('{TENANT_SETTING}', true)"
                     f" OR current_setting('{PLATFORM_SETTING}', true) = 'on'")


@dataclass(frozen=True)
class RowScope:
    """A tenant's rows (tenant_id), or every tenant's (platform)."""

    tenant_id: str = ""
    platform: bool = False


PLATFORM = RowScope(platform=True)
# What a transaction without a scope is given: nothing.
NO_ROWS = RowScope()

_explicit: contextvars.ContextVar[RowScope | None] = contextvars.ContextVar("nhm_row_scope", default=None)


def current_row_scope() -> RowScope:
    """The scope named by :func:`platform_rows` or :func:`tenant_rows`, else the RPC caller's, else no rows."""
    explicit = _explicit.get()
    if explicit is not None:
        return explicit
    principal = serving_principal()
    if principal is None:
        return NO_ROWS
    if principal.tenant_id:
        return RowScope(principal.tenant_id)
    return PLATFORM if principal.is_platform else NO_ROWS


@contextlib.contextmanager
def platform_rows() -> Iterator[None]:
    """Every tenant's rows, for the platform's own work. Refused inside a call made with a tenant key."""
    principal = serving_principal()
    if principal is not None and not principal.is_platform:
        raise RuntimeError("the platform row scope is not available to a call made with a tenant key")
    with _scoped(PLATFORM):
        yield


@contextlib.contextmanager
def tenant_rows(tenant_id: str) -> Iterator[None]:
    """One tenant's rows. Inside a call made with a tenant key, only that key's tenant."""
    if not tenant_id:
        raise ValueError("tenant_rows needs a tenant id")
    principal = serving_principal()
    if principal is not None and not principal.is_platform and principal.tenant_id != tenant_id:
        raise RuntimeError("a call made with a tenant key cannot name another tenant's rows")
    with _scoped(RowScope(tenant_id)):
        yield


@contextlib.contextmanager
def row_scope(scope: RowScope) -> Iterator[None]:
    """Run with a scope taken earlier by :func:`current_row_scope` (work handed to another thread)."""
    with _scoped(scope):
        yield


@contextlib.contextmanager
def _scoped(scope: RowScope) -> Iterator[None]:
    token = _explicit.set(scope)
    try:
        yield
    finally:
        _explicit.reset(token)
