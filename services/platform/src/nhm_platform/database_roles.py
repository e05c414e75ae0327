"""The PostgreSQL application role on a development or test server: created if missing, and URLs that use it.

In production the operator creates the role (docs/operations.md#database-roles). `make up-local`, the test
provisioner and the benchmarks run against a server where they hold a superuser: they create the role here,
migrate as the server's user (the tables' owner) and start the services as the role.
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from nhm_platform.settings import ServerSettings


def ensure_login_role(server_url: str, role: str, password: str | None = None) -> None:
    """Create ``role`` (LOGIN NOSUPERUSER NOBYPASSRLS, with the password if given) unless it exists. A role that
    exists is left as it is; several runs creating it at once are fine."""
    base = make_url(server_url)
    with psycopg.connect(host=base.host or "127.0.0.1", port=base.port or 5432, user=base.username,
                         password=base.password, dbname="postgres", autocommit=True) as admin:  # roles: server-wide
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            return
        create = sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(role))
        if password:
            create = sql.SQL("{} PASSWORD {}").format(create, sql.Literal(password))
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            admin.execute(create)  # another run may have created it meanwhile


def as_role(url: str, role: str, password: str | None = None) -> str:
    """The same database URL, connecting as another role."""
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


def application_url(owner_url: str, role: str = ServerSettings.database_app_role) -> str:
    """What a service started against ``owner_url`` (a superuser's, on a development or test server) connects
    with: the same database as the application role, created if missing (no password: a local, trusted server).
    A SQLite URL as it is."""
    if make_url(owner_url).get_backend_name() != "postgresql":
        return owner_url
    ensure_login_role(owner_url, role)
    return as_role(owner_url, role)
