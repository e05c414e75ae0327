"""Alembic migrations, one history per service, run on start-up or by the `migrate` command.

A service's ``migrations/env.py`` is two lines: import its metadata and call :func:`run_env`.
On PostgreSQL an advisory lock makes replicas that start together migrate one at a time, and after the
migrations, in the same transaction, the application role is granted exactly what the service needs on each
of its tables (:func:`grant_application_role`). Migrations run as the tables' owner; the service connects as
the application role, which row-level security (:func:`protect_rows`) then holds to one tenant's rows.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import Connection, MetaData, create_engine, pool, text

from nhm_platform.db import ANALYZE_FUNCTION
from nhm_platform.row_scope import POLICY_EXPRESSION
from nhm_platform.settings import ServerSettings

POLICY_NAME = "tenant_rows"
# Table.info key: the application may only read and add rows (an audit trail), never change or remove them.
APPEND_ONLY = "append_only"


def upgrade(database_url: str, migrations_dir: Path, version_table: str, revision: str = "head",
            app_role: str = ServerSettings.database_app_role) -> None:
    """Migrate to a revision (head); on PostgreSQL grant app_role its privileges (empty: grant nothing)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = database_url
    config.attributes["version_table"] = version_table
    config.attributes["app_role"] = app_role
    command.upgrade(config, revision)


def run_env(metadata: MetaData) -> None:
    """Body of a service's env.py (online mode only)."""
    config = context.config
    url = config.attributes["database_url"]
    version_table = config.attributes["version_table"]
    app_role = config.attributes.get("app_role", "")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        is_pg = connection.dialect.name == "postgresql"
        lock_id = zlib.crc32(version_table.encode())
        if is_pg:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=version_table,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if is_pg and app_role:
                    grant_application_role(connection, metadata, app_role)
        finally:
            if is_pg:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                connection.commit()
    engine.dispose()


def grant_application_role(connection: Connection, metadata: MetaData, role: str) -> None:
    """Give the role exactly the service's privileges on its tables (whatever it had before is revoked):
    read and write rows, append only where a table says so, use the tables' id sequences. Nothing else:
    no DDL, no TRUNCATE, no ownership, so it can neither alter nor disable row-level security."""
    if not connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).scalar():
        raise RuntimeError(
            f"the database role {role!r} (setting database_app_role) does not exist: create it, e.g. "
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '...', then migrate again")
    if connection.execute(text("SELECT current_user")).scalar_one() == role:
        raise RuntimeError(
            f"migrations run as the application role {role!r}: run them as the tables' owner "
            "(setting migration_database_url) and let the service connect as the application role")
    quote = connection.dialect.identifier_preparer.quote
    grantee = quote(role)
    schema = quote(connection.execute(text("SELECT current_schema()")).scalar_one())
    connection.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {grantee}"))
    existing = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
                   .scalars())
    for table in (t for t in metadata.sorted_tables if t.name in existing):  # a partial upgrade has fewer
        privileges = "SELECT, INSERT" if table.info.get(APPEND_ONLY) else "SELECT, INSERT, UPDATE, DELETE"
        connection.execute(text(f"REVOKE ALL ON {quote(table.name)} FROM {grantee}"))
        connection.execute(text(f"GRANT {privileges} ON {quote(table.name)} TO {grantee}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {grantee}"))
    if connection.execute(text(f"SELECT to_regprocedure('{ANALYZE_FUNCTION}(text[])')")).scalar() is not None:
        connection.execute(text(f"GRANT EXECUTE ON FUNCTION {ANALYZE_FUNCTION}(text[]) TO {grantee}"))


def create_analyze_function() -> None:
    """In a migration: ``nhm_analyze(tables text[])``, which refreshes the planner's statistics of the schema's
    tables as their owner (only an owner may ANALYZE); the application role may execute it. PostgreSQL only."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""CREATE OR REPLACE FUNCTION {ANALYZE_FUNCTION}(tables text[]) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        DECLARE name text;
        BEGIN
            FOREACH name IN ARRAY tables LOOP
                IF NOT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = name) THEN
                    RAISE EXCEPTION 'no table % in schema %', name, current_schema();
                END IF;
                EXECUTE format('ANALYZE %I', name);
            END LOOP;
        END $$""")  # noqa: S608 - no input: the function's name
    op.execute(f"REVOKE ALL ON FUNCTION {ANALYZE_FUNCTION}(text[]) FROM PUBLIC")


def drop_analyze_function() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {ANALYZE_FUNCTION}(text[])")


def protect_rows(table: str, column: str = "tenant_id", *, using: str = "") -> None:
    """In a migration: row-level security on a tenant-scoped table, ENABLEd and FORCEd (its owner is held to it
    too), with the policy of row_scope.py on ``column`` or the given expression: a row is visible, and may be
    written, only when its tenant is the transaction's nhm.tenant_id setting, or when nhm.platform is on. The
    services set both transaction-locally on every transaction; without them a transaction sees no rows.
    PostgreSQL only (SQLite has none)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY_NAME} ON {table} USING ({using or POLICY_EXPRESSION.format(column=column)})")


def protect_tenant_tables(tables: Sequence[str]) -> None:
    """A service's row-level security migration: :func:`protect_rows` on each of its tables with a tenant_id
    column, and the owner's statistics function (the application role does not own the tables)."""
    create_analyze_function()
    for table in tables:
        protect_rows(table)


def unprotect_tenant_tables(tables: Sequence[str]) -> None:
    """Undo :func:`protect_tenant_tables`."""
    for table in tables:
        unprotect_rows(table)
    drop_analyze_function()


def unprotect_rows(table: str) -> None:
    """Undo :func:`protect_rows` (a migration's downgrade)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
